"""Create the site's bucket in the in-cluster MinIO if it is missing (run by the migrations Job)."""

import os
import sys
import time

from minio import Minio
from minio.error import S3Error

ATTEMPTS = 60


def main() -> int:
    client = Minio(
        os.environ["OPENJIP_STORAGE__S3_ENDPOINT"],
        access_key=os.environ["OPENJIP_STORAGE__S3_ACCESS_KEY"],
        secret_key=os.environ["OPENJIP_STORAGE__S3_SECRET_KEY"],
        secure=os.environ.get("OPENJIP_STORAGE__S3_SECURE", "false").lower() == "true",
    )
    bucket = os.environ["OPENJIP_STORAGE__S3_BUCKET"]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
                print(f"created bucket {bucket}")
            else:
                print(f"bucket {bucket} exists")
            return 0
        except (S3Error, OSError) as error:
            # MinIO may still be starting after install: retry for a while.
            print(f"attempt {attempt}/{ATTEMPTS}: {error}", file=sys.stderr)
            time.sleep(5)
    return 1


if __name__ == "__main__":
    sys.exit(main())
