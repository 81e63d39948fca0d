// Lint with type information (typescript-eslint's project service: each package's tsconfig.json for
// its sources, the root tsconfig.json for the tests). Run by `make lint` / `pnpm lint`, and by .ci/run
// before the tests, as one check.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/bundle/**', '**/node_modules/**', '.tmp/**'] },
  {
    files: ['packages/*/src/**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // The two this project asked for: a promise nobody awaits loses its error (an unhandled
      // rejection ends the agent), and a switch over a union must say what it does with every member.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-misused-promises': 'error',
      // Rethrowing what a catch caught (an unknown) is how failures travel here.
      '@typescript-eslint/only-throw-error': 'off',
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // Without noUncheckedIndexedAccess, a `!` on an index documents that the element exists.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // An async method that does not await implements a promise-returning interface (the stores).
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // Tests: the rules that catch a test passing by accident (a promise nobody awaits, an expectation
    // never reached); the rest of the recommended set mostly flags JSON read from CLIs and servers.
    files: ['packages/*/test/**/*.ts', 'test/**/*.ts'],
    languageOptions: { parser: tseslint.parser, parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
    },
  },
);
