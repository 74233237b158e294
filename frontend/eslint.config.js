// `npm run lint` (also run by `make frontend-test`): the size limits of the house style, and
// the rules of hooks (both of its classic rules: hooks called unconditionally, effects that
// list what they read). Sizes count every line as `wc -l` does, blank lines and comments
// included, so the limit a reader sees is the limit the tool enforces.
import reactHooks from "eslint-plugin-react-hooks";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

export default defineConfig([
  { ignores: ["dist/", "node_modules/"] },
  {
    files: ["src/**/*.{ts,tsx}"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { ecmaFeatures: { jsx: true } },
    },
    plugins: { "react-hooks": reactHooks },
    rules: {
      "max-lines": ["error", { max: 400, skipBlankLines: false, skipComments: false }],
      // React components are functions too: a component over 80 lines is split into smaller ones.
      "max-lines-per-function": ["error", { max: 80, skipBlankLines: false, skipComments: false }],
      "react-hooks/rules-of-hooks": "error",
      "react-hooks/exhaustive-deps": "error",
    },
  },
]);
