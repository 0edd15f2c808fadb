import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The bundle is committed under the Python package (api/static/console) and served by
// `nodeloom serve` at `/`. Fixed file names (no content hashes) keep the committed files
// stable from one build to the next, so tests/test_console_bundle.py can compare them.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../api/static/console",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      output: {
        entryFileNames: "assets/console.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
        inlineDynamicImports: true,
      },
    },
  },
});
