"""`python -m infra.glue.publish --stack NAME`: upload the job's code and dependency list to the stack's artifact
bucket, under glue/, where the RetrainJob's --extra-py-files and --additional-python-modules point.

Run after `sam deploy` (the bucket is the stack's) and after every change to the code or the lock; the next run
of the job picks them up. Credentials and region come from the deployer's AWS profile.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import boto3

from infra.glue.bundle import BUNDLE, ROOT, build

PREFIX = "glue"


def artifact_bucket(stack: str) -> str:
    outputs = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        if output["OutputKey"] == "ArtifactBucketName":
            return str(output["OutputValue"])
    raise SystemExit(f"stack {stack} has no ArtifactBucketName output: deploy it first")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.glue.publish")
    parser.add_argument("--stack", required=True, help="the deployed stack (samconfig.toml's stack_name)")
    parser.add_argument("--folder", default=str(ROOT / "build" / "glue"))
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    build(folder)
    bucket = artifact_bucket(args.stack)
    s3 = boto3.client("s3")
    for name in (BUNDLE, "requirements.txt"):
        s3.upload_file(str(folder / name), bucket, f"{PREFIX}/{name}")
        print(f"uploaded s3://{bucket}/{PREFIX}/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
