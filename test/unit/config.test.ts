import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, configTable, loadConfig, SETTINGS } from '../../app/gateway/config.ts';

const demo = { AUTH_MODE: 'none' };

describe('gateway configuration', () => {
  it('has a default for the embedded demo and requires an explicit AUTH_MODE=none to skip auth', () => {
    expect(loadConfig(demo)).toMatchObject({ ADAPTER: 'memory', PORT: 3000, AUTH_MODE: 'none' });
    expect(() => loadConfig({})).toThrow(/AUTH_MODE=jwt needs one of JWT_SECRET/);
  });

  it('names every bad variable and what it allows', () => {
    const err = (() => {
      try {
        loadConfig({ ...demo, ADAPTER: 'kafka', HISTORY_SIZE: '-3', LOG_LEVEL: 'loud' });
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain('ADAPTER="kafka": must be one of memory, redis, redis-cluster');
    expect(err.message).toContain('HISTORY_SIZE="-3"');
    expect(err.message).toContain('LOG_LEVEL="loud": must be one of fatal, error, warn, info, debug, trace, silent');
  });

  it('refuses settings that contradict each other', () => {
    expect(() => loadConfig({ ...demo, SHUTDOWN_DEADLINE_MS: '1000' })).toThrow(/SHUTDOWN_DEADLINE_MS=1000 must be above/);
    expect(() => loadConfig({ ...demo, PING_INTERVAL_MS: '50000', PING_TIMEOUT_MS: '20000' })).toThrow(/below 60000/);
  });

  it('is documented in the README table exactly as the schema defines it', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(configTable());
    expect(Object.keys(SETTINGS).length).toBeGreaterThan(20);
  });
});
