export { serveLog, type LogServer } from './server.ts';
export { connectRemoteLog } from './client.ts';
export { packRecords, unpackRecords, type PackedRecords } from './wire.ts';
