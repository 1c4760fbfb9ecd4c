export { openEmbeddedLog } from './embedded-log.ts';
export type { EmbeddedLog, EmbeddedLogOptions } from './embedded-log.ts';
