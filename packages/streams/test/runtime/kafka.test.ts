import { after } from 'node:test';
import { connectKafkaLog } from '../../src/log/kafka/index.ts';
import type { Log } from '../../src/index.ts';
import { topologySuite } from './topology-suite.ts';

const bootstrap = process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
let log: Log | undefined;

topologySuite('kafka', async () => (log ??= await connectKafkaLog({ bootstrapServers: bootstrap, clientId: 'topology-suite' })));

after(async () => {
  await log?.close();
});
