// Type-aware checks live in `tsc`; ESLint adds the rules tsc does not enforce, including the module
// boundaries below (docs/architecture.md): each entry names what a folder must never import.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** `no-restricted-imports` patterns for relative imports that reach into the named top-level folders. */
const forbid = (folders, why) => ({
  'no-restricted-imports': ['error', {
    patterns: folders.map((folder) => ({ regex: `^(\\.\\./)+${folder}(/|$)`, message: why })),
  }],
});

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'bin/', 'charts/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  {
    files: ['scripts/**', 'bench/**', 'test/**', 'infra/**', 'examples/**'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['app/protocol/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '^\\.\\./', message: 'app/protocol is the shared contract: it imports nothing of ours.' }],
      }],
    },
  },
  {
    files: ['app/client/**', 'app/web/**'],
    rules: forbid(['gateway', 'controller', 'app/gateway', 'app/controller', 'infra', 'scripts', 'test'],
      'The client SDK and the page run in browsers: they may import app/protocol and app/client only.'),
  },
  {
    files: ['app/publisher/**'],
    rules: forbid(['gateway', 'controller', 'client', 'web', 'app/gateway', 'app/controller', 'app/client', 'app/web', 'infra', 'scripts', 'test', 'bench'],
      'The publisher library runs in application backends: it may import app/protocol only.'),
  },
  {
    files: ['app/gateway/**'],
    rules: forbid(['controller', 'app/controller', 'infra', 'scripts', 'test', 'bench'],
      'The gateway must not depend on the controller, infra/ or tooling: they depend on it.'),
  },
  {
    files: ['app/controller/**'],
    rules: forbid(['gateway', 'app/gateway', 'infra', 'scripts', 'test', 'bench'],
      'The controller talks to gateways over HTTP and Redis contracts (app/protocol), never through gateway code.'),
  },
  {
    files: ['infra/**'],
    rules: forbid(['app', 'test', 'scripts'],
      'infra/ is a library of constructs: what it needs of app/ is generated into infra/generated/ (scripts/generate-infra-contracts.ts).'),
  },
  {
    files: ['scripts/**', 'bench/**'],
    rules: forbid(['test'], 'Tools may not import tests; tests import tools (DEVELOPERS: test/ holds tests and fixtures).'),
  },
);
