import { parentPort, workerData } from 'node:worker_threads';
const x: number = (workerData as { n: number }).n;
parentPort?.postMessage(x * 2);
