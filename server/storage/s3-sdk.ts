/**
 * The parts of the AWS SDK's S3 client that S3ParcelStore uses, and nothing else: the one
 * module that imports the SDK at run time. The store loads it with `import()` when a store is
 * opened, so a server configured without S3 never loads the SDK. Named imports let the server
 * bundle (scripts/bundle-server.mjs, which bundles the SDK from its ES module build) leave out
 * the ~100 commands, serializers and error classes the store never uses. A new SDK name the
 * store needs is added here.
 */
export {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
