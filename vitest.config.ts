import { defineConfig } from 'vitest/config';

// One command runs every suite. Integration suites start real processes (redis-server, gateways,
// HAProxy, Chromium, kube-apiserver), so files run two at a time on the 2-core reference machine.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['vitest.global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
