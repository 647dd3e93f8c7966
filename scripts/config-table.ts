// Rewrites the configuration table in README.md from app/gateway/config.ts (`npm run config-table`).
import { readFileSync, writeFileSync } from 'node:fs';
import { configTable } from '../app/gateway/config.ts';

const START = '<!-- config-table:start -->';
const END = '<!-- config-table:end -->';
const readme = readFileSync('README.md', 'utf8');
const [before, rest] = readme.split(START);
const after = rest?.split(END)[1];
if (before === undefined || after === undefined) throw new Error(`README.md needs the markers ${START} and ${END}`);
writeFileSync('README.md', `${before}${START}\n${configTable()}\n${END}${after}`);
console.log('README.md configuration table updated');
