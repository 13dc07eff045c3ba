#!/usr/bin/env node
/**
 * The comparison server of a download from parcels kept on S3: a bare node:http server on
 * 127.0.0.1 (free port, printed as `{"port":N}`) that answers every GET with one object streamed
 * from an S3 service (`bare-s3-server <endpoint> <region> <bucket> <key>`): the AWS SDK's
 * GetObject, its body piped to the reply, the client set up as the server's S3 parcel store sets
 * up its own (bench/lib/s3-direct.ts). The plain way to serve an S3 object from Node; credentials
 * from the AWS_* environment. Stops on SIGTERM/SIGINT.
 */
import { pipeline, type Readable } from 'node:stream';
import { serveBare } from '../lib/bare-listen.js';
import { s3Client } from '../lib/s3-direct.js';

const [endpoint, region, bucket, key] = process.argv.slice(2);
if (endpoint === undefined || region === undefined || bucket === undefined || key === undefined) {
  process.stderr.write('usage: bare-s3-server <endpoint> <region> <bucket> <key>\n');
  process.exit(2);
}

const { sdk, client } = await s3Client({ endpoint, region });
serveBare((req, res) => {
  client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key })).then(
    (object) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': object.ContentLength ?? 0 });
      const body = object.Body as Readable;
      if (req.method === 'HEAD') {
        body.destroy();
        res.end();
      } else {
        pipeline(body, res, () => undefined);
      }
    },
    (err: unknown) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(err));
    },
  );
});
