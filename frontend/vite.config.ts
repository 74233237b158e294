/// <reference types="vitest/config" />
// Built by `npm run build` into dist/, which Django serves: index.html from the SPA view and
// the hashed assets under /static/ (whitenoise; frontend/dist is a STATICFILES_DIRS entry).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/static/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
  },
  server: {
    // `npm run dev` talks to a Django on :8000 (same-origin cookies through the proxy).
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/admin": "http://127.0.0.1:8000",
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
