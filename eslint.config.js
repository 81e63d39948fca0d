// Lint for the packages' sources, with type information (typescript-eslint's project service reads
// each package's tsconfig.json). Run by `pnpm lint`, and by .ci/run before the tests.
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
);
