import type { Command } from 'commander';
import { integerOption, loadConfig, MAX_PORT } from '../config.js';
import { openConfiguredDatabase } from '../app/database.js';
import { serverSettings, startServer } from '../server.js';
import { createServices } from '../app/services.js';
import { seedDemo } from '../app/demo.js';
import { migrateArtifacts, reportMigration } from '../app/artifacts.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('Run the GraphQL server (PGlite under ATLAS_DATA_DIR unless DATABASE_URL is set)')
    .option('--port <n>', 'port to listen on (default PORT or 4000)', integerOption('--port', 0, MAX_PORT))
    .option('--host <h>', 'interface to listen on (default HOST or 127.0.0.1; 0.0.0.0 for all)')
    .action(async (opts: { port?: number; host?: string }) => {
      const config = loadConfig();
      if (opts.port !== undefined) config.port = opts.port;
      if (opts.host !== undefined) config.host = opts.host;
      const database = await openConfiguredDatabase(config, { statementTimeoutMs: config.requestTimeoutMs });
      // Rows from before the artifact store get their files stored, where this machine has them.
      reportMigration(await migrateArtifacts(database), (line) => console.log(line));
      const services = await createServices(config, database);
      if (config.demo) await seedDemo(database, services.registry, config.dataDir, (line) => console.log(line));
      const server = await startServer(
        {
          database,
          services,
          ...serverSettings(config),
        },
        { port: config.port, host: config.host },
      );
      console.log(
        `Feature Atlas ${services.version} listening on ${server.url} (database: ${database.description}; execution ` +
          `provider: ${services.executionProvider()})`,
      );

      let stopping = false;
      const shutdown = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        console.log(`${signal}: finishing in-flight requests and closing the database`);
        await server.stop();
        await services.close();
        await database.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void shutdown('SIGINT'));
      process.once('SIGTERM', () => void shutdown('SIGTERM'));
    });
}
