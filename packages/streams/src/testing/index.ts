export { TopologyTestDriver, TestInputTopic, TestOutputTopic } from './driver.ts';
export type { TestDriverOptions, TestRecord } from './driver.ts';
export { readTopic } from './read.ts';
