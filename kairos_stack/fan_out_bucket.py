"""The stage's fan-out bucket: where a fan-out plan past an inline Map's limits keeps its batches and
its Distributed Map's results (docs/adr/0164-distributed-map-past-the-inline-limits.md)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from kairos_runtime.fan_out_objects import FAN_OUT_PREFIX


class FanOutBucket(Construct):
    """Private, S3-encrypted, SSL-only; every object under ``fan-out/`` expires after ``expiry_days``
    (a run's work list and results are read within the run's execution, at most a day)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, expiry_days: int, removal_policy: cdk.RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireFanOutObjects",
                    prefix=FAN_OUT_PREFIX,
                    expiration=cdk.Duration.days(expiry_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
        )
        cdk.Validations.of(self.bucket).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions::AwsSolutions-S1",
                reason=(
                    f"Holds only fan-out work lists and Map results, expired after {expiry_days} days; "
                    "who read and wrote them is in each state machine's execution log and CloudTrail"
                ),
            )
        )
