// ESLint: typescript-eslint's recommended rules, and the direction of imports between layers
// (src/engine → nothing above it; src/db → nothing above it; src/app → engine and db; the edges —
// resolvers, commands, server — call app and may name db/engine types only).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (regex, message, allowTypeImports = false) => ({ regex, message, allowTypeImports });
const ABOVE_ENGINE = layer(
  '(^|/)(db|app|resolvers|commands|schema)/|/(server|web|cli)\\.js$',
  'src/engine is pure computation: it imports no db, app, resolvers or commands.',
);
const ABOVE_DB = layer(
  '(^|/)(engine|app|resolvers|commands|schema)/|/(server|web|cli)\\.js$',
  'src/db stores and reads: it imports no engine, app, resolvers or commands.',
);
const ABOVE_APP = layer(
  '(^|/)(resolvers|commands)/|/(server|web|cli)\\.js$',
  'src/app holds use cases: resolvers, commands and the server call it, not the other way round.',
);
const BELOW_EDGE = layer(
  '(^|/)(db|engine)/',
  'Resolvers, commands and the server call src/app; they may import db/engine types only.',
  true,
);

const restrict = (...patterns) => ({ '@typescript-eslint/no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'web/dist/**', 'assets/**', 'migrations/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'max-len': ['error', { code: 120, ignoreUrls: true, ignoreRegExpLiterals: true }],
    },
  },
  { files: ['src/engine/**/*.ts'], rules: restrict(ABOVE_ENGINE) },
  { files: ['src/db/**/*.ts'], rules: restrict(ABOVE_DB) },
  { files: ['src/app/**/*.ts'], rules: restrict(ABOVE_APP) },
  {
    files: ['src/resolvers/**/*.ts', 'src/commands/**/*.ts', 'src/server.ts', 'src/operations.ts', 'src/cli.ts'],
    rules: restrict(BELOW_EDGE),
  },
  { files: ['test/**/*.ts', 'bench/**/*.ts', 'tools/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
);
