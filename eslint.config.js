// ESLint: typescript-eslint's recommended rules, and the direction of imports between layers
// (src/engine → nothing above it; src/db → nothing above it; src/app → engine and db; the edges —
// resolvers, commands, http, server — call app and may name db/engine types only).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import graphql from '@graphql-eslint/eslint-plugin';

const layer = (regex, message, allowTypeImports = false) => ({ regex, message, allowTypeImports });
const ABOVE_ENGINE = layer(
  '(^|/)(db|app|resolvers|commands|schema|http)/|/(server|web|cli)\\.js$',
  'src/engine is pure computation: it imports no db, app, resolvers or commands.',
);
const ABOVE_DB = layer(
  '(^|/)(engine|app|resolvers|commands|schema|http)/|/(server|web|cli)\\.js$',
  'src/db stores and reads: it imports no engine, app, resolvers or commands.',
);
const ABOVE_APP = layer(
  '(^|/)(resolvers|commands|http)/|/(server|web|cli)\\.js$',
  'src/app holds use cases: resolvers, commands and the server call it, not the other way round.',
);
const BELOW_EDGE = layer(
  '(^|/)(db|engine)/',
  'Resolvers, commands and the server call src/app; they may import db/engine types only.',
  true,
);

// One graphql-config for the SDL and the UI's operations: graphql-eslint loads it once per process, so the
// first .graphql file linted decides it for all.
const graphQLConfig = { schema: 'src/schema/*.graphql', documents: 'web/src/operations/*.graphql' };

const restrict = (...patterns) => ({ '@typescript-eslint/no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  {
    ignores: [
      'src/resolvers/generated.ts',
      'web/src/generated.ts',
      'dist/**',
      'node_modules/**',
      'data/**',
      'web/dist/**',
      'assets/**',
      'migrations/**',
    ],
  },
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
    files: [
      'src/resolvers/**/*.ts',
      'src/commands/**/*.ts',
      'src/http/**/*.ts',
      'src/server.ts',
      'src/subscriptions.ts',
      'src/operations.ts',
      'src/cli.ts',
    ],
    rules: restrict(BELOW_EDGE),
  },
  { files: ['test/**/*.ts', 'bench/**/*.ts', 'tools/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  // The SDL: graphql-eslint's recommended schema rules and Relay's connection rules, checked against the
  // whole schema (src/schema/*.graphql together).
  {
    files: ['src/schema/*.graphql'],
    languageOptions: { parser: graphql.parser, parserOptions: { graphQLConfig } },
    plugins: { '@graphql-eslint': graphql },
    rules: {
      ...graphql.configs['flat/schema-recommended'].rules,
      ...graphql.configs['flat/schema-relay'].rules,
      // One-line descriptions stay inline, longer ones are blocks.
      '@graphql-eslint/description-style': 'off',
      // Lists of values (tokens, matches, hits) are not connections.
      // Edges of matches hold values (FeatureMatch), not nodes; paging is forward only (documented).
      '@graphql-eslint/relay-edge-types': ['error', { listTypeCanWrapOnlyEdgeType: false, shouldImplementNode: false }],
      '@graphql-eslint/relay-arguments': ['error', { includeBoth: false }],
      // Token.tokenId is named as TokenFeatures.tokenId and LogitToken.tokenId are.
      '@graphql-eslint/no-typename-prefix': 'off',
      // Objects clients cache have an id; the rest are values cached inside their parent (a new type
      // without an id must be added here, knowingly).
      '@graphql-eslint/strict-id-in-types': [
        'error',
        {
          exceptions: {
            suffixes: ['Connection', 'Edge', 'Payload', 'Hit'],
            types: [
              ...[
                'ActivationExample',
                'Encoding',
                'FeatureActivation',
                'FeatureMap',
                'FeatureMatch',
                'FeatureNeighbor',
              ],
              ...['HookActivations', 'HookTensor', 'LogitToken', 'MapBounds', 'MapPoint', 'MatchReason'],
              ...['OneToOneMatching', 'PageInfo', 'QuantileBand', 'Reconstruction', 'ServerInfo', 'Token'],
              ...['TokenFeatures', 'UserError', 'Generation', 'GeneratedToken', 'TokenAlternative', 'GenerationEvent'],
              ...['ResidentMemory', 'ResidentEntry'],
            ],
          },
        },
      ],
    },
  },
  // The UI's operations, checked against the schema (unknown fields, unused variables, …).
  {
    files: ['web/src/operations/*.graphql'],
    languageOptions: { parser: graphql.parser, parserOptions: { graphQLConfig } },
    plugins: { '@graphql-eslint': graphql },
    rules: graphql.configs['flat/operations-recommended'].rules,
  },
);
