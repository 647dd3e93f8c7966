// A worker thread rendering its share of the chart's variants (renderVariants in chart-generator.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { renderShare } from './chart-generator.ts';

const { first, step } = workerData as { first: number; step: number };
parentPort!.postMessage(renderShare(first, step));
