import { createRequire } from 'node:module'
import { defineConfig } from 'vitest/config'

const require = createRequire(import.meta.url)

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS (main) and ESM (module) builds without an exports map. Node (and so
    // Pothos and yoga) load the CJS one, Vite would pick the ESM one: two copies break
    // `instanceof`. Point Vite at the one Node uses.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    // Each file gets its own database (PGlite in memory, or a fresh schema on TEST_DATABASE_URL),
    // so files may run in parallel; the machine has two cores.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    // Generous: a served test app on embedded PGlite can take long to build on a busy 2-core machine.
    hookTimeout: 120_000,
    projects: [
      // src/**: modules that keep their unit tests beside them (src/jmespath).
      {
        extends: true,
        test: { name: 'app', include: ['test/**/*.test.ts', 'src/**/*.test.ts'] },
      },
      // The GraphQL tests again, each request over a socket to the listener `npm start` uses
      // (src/http/graphql-direct.ts in front of yoga), so both paths answer every case.
      {
        extends: true,
        test: {
          name: 'direct',
          include: ['test/graphql/**/*.test.ts'],
          env: { TEST_TRANSPORT: 'node' },
        },
      },
    ],
  },
})
