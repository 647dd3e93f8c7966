import { defineConfig } from 'vitest/config';

// One command runs every suite. Integration suites start real processes (redis-server, gateways,
// HAProxy, Chromium, kube-apiserver), so files run two at a time on the 2-core reference machine —
// except the real-node suites (one node per machine) and the chaos suite, which measures reconnect
// rates and runs last, alone, so other suites' CPU load does not distort what it measures.
const shared = {
  globalSetup: ['vitest.global-setup.ts'],
  pool: 'forks' as const,
  testTimeout: 60_000,
  hookTimeout: 120_000,
  // expect.poll's 1 s default is too short for a browser or a pod on two cores shared by two suites.
  expect: { poll: { timeout: 5_000 } },
};

export default defineConfig({
  test: {
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      { test: { ...shared, name: 'suites', include: ['test/**/*.test.ts'], exclude: ['test/chaos/**', 'test/node/**'], maxWorkers: 2, sequence: { groupOrder: 0 } } },
      // One real node per machine (a lock): its files run one at a time, after the other suites.
      { test: { ...shared, name: 'node', include: ['test/node/**/*.test.ts'], maxWorkers: 1, sequence: { groupOrder: 1 } } },
      { test: { ...shared, name: 'chaos', include: ['test/chaos/**/*.test.ts'], maxWorkers: 1, sequence: { groupOrder: 2 } } },
    ],
  },
});
