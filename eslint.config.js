// ESLint: the recommended rules of ESLint and typescript-eslint (without type information, so it
// stays fast), on top of the strict tsc settings in tsconfig.json. Prettier owns the layout.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Unused names are tsc's job (noUnusedLocals/noUnusedParameters); `_` marks the intended ones.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // A variable assigned once after a closure that reads it (a server and its handler).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // The service refuses or strips control characters in many inputs on purpose.
      'no-control-regex': 'off',
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' },
    },
  },
)
