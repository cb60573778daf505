/** Builds the browser UI (the atlas pages and GraphiQL) into dist/web, which src/web.ts serves. */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/',
  plugins: [react()],
  // Everything the pages need is bundled: no fonts, scripts or styles from the network.
  build: {
    outDir: here('../dist/web'),
    emptyOutDir: true,
    chunkSizeWarningLimit: 6000,
    rollupOptions: {
      input: { index: here('index.html'), graphiql: here('graphiql.html') },
      // GraphiQL's modules start with React-compiler directives the bundler drops harmlessly; one
      // warning per module would bury real ones.
      onwarn(warning, warn) {
        if (warning.code !== 'MODULE_LEVEL_DIRECTIVE') warn(warning);
      },
    },
  },
});
