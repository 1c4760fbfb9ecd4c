// ESLint flat config: typescript-eslint's recommended rules over the whole workspace.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '.cache/**', '**/dist/**', 'tmp/**', '.data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // The dashboard's page code runs in the browser (type-checked by packages/dashboard/tsconfig.json).
  { files: ['packages/dashboard/src/**/*.ts'], languageOptions: { globals: { ...globals.browser } } },
);
