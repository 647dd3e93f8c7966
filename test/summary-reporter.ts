import type { Reporter, SerializedError, TestModule } from 'vitest/node';

// Ends the run with what a CI log reader sees first when only the tail survives: each failed test with
// its file and the first line of its error, each unhandled error with the file it came from, then one
// plain line, `tests: N passed, N failed, N skipped`.
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: readonly TestModule[], unhandledErrors: readonly SerializedError[]): void {
    const counts = { passed: 0, failed: 0, skipped: 0 };
    const failures: string[] = [];
    for (const module of testModules) {
      const file = fromRoot(module.moduleId);
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === 'passed') counts.passed += 1;
        else if (result.state === 'failed') {
          counts.failed += 1;
          failures.push(`FAILED ${file} > ${test.fullName}\n  ${firstLine(result.errors?.[0])}`);
        } else counts.skipped += 1;
      }
      if (module.state() === 'failed' && [...module.children.allTests()].length === 0) {
        counts.failed += 1;
        failures.push(`FAILED ${file} (the file itself)\n  ${firstLine(module.errors()[0])}`);
      }
    }
    for (const error of unhandledErrors) {
      const { VITEST_TEST_PATH: origin, VITEST_TEST_NAME: name } = error as { VITEST_TEST_PATH?: string; VITEST_TEST_NAME?: string };
      failures.push(`UNHANDLED ${origin ? fromRoot(origin) : 'origin unknown'}${name ? ` (after "${name}")` : ''}\n  ${firstLine(error)}`);
    }
    const list = failures.length > 0 ? `\n${failures.join('\n')}\n` : '';
    process.stdout.write(`${list}\ntests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`);
  }
}

function fromRoot(path: string): string {
  return path.replace(`${process.cwd()}/`, '');
}

function firstLine(error: { name?: string; message?: string } | undefined): string {
  if (!error) return '(no error recorded)';
  return `${error.name ?? 'Error'}: ${(error.message ?? '').split('\n')[0]!.slice(0, 300)}`;
}
