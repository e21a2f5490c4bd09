"""The AWS limits a tasks.yaml can run into after it validates, each checked by ``kairos validate``.

Each constant cites where AWS documents it, so a limit that changes is changed here and nowhere
else. The values are the ones the service itself enforces at deploy time; checking them before the
synth turns a CloudFormation (or CDK) failure into a line of tasks.yaml.
"""

from __future__ import annotations

SCHEDULE_EXPRESSION_MAX_LENGTH = 256
"""Scheduler's ``ScheduleExpression``: 1 to 256 characters (EventBridge Scheduler API reference,
CreateSchedule; ``AWS::Scheduler::Schedule`` ``ScheduleExpression`` maxLength 256)."""

SCHEDULE_TIMEZONE_MAX_LENGTH = 50
"""Scheduler's ``ScheduleExpressionTimezone``: 1 to 50 characters (same references)."""

LAMBDA_DESCRIPTION_MAX_LENGTH = 256
"""``AWS::Lambda::Function`` ``Description``: at most 256 characters (Lambda API reference,
CreateFunction). CDK checks it at synth counting JavaScript string length, that is UTF-16 code
units, so an emoji counts twice: :func:`utf16_length` counts the same way."""

STACK_MAX_RESOURCES = 500
"""Resources one CloudFormation stack may declare (AWS CloudFormation User Guide, "Understand
CloudFormation quotas": Resources, 500). CDK refuses a larger stack at synth with
``TooManyResourcesInStack``."""

TEMPLATE_MAX_BYTES = 1_000_000
"""A template uploaded to S3, as ``cdk deploy`` does (same quotas page: "Template body size in an
Amazon S3 object", 1 MB)."""

SCHEDULE_INPUT_MAX_BYTES = 8192
"""Kairos's own budget for one schedule's JSON input (the event it sends), in UTF-8 bytes.

Scheduler's API documents no maximum for ``Target.Input`` and Lambda takes asynchronous payloads
up to 1 MB (Lambda API reference, Invoke), but every input is written into the stage's template,
which holds at most :data:`TEMPLATE_MAX_BYTES` alongside about 10 KB of resources per task. At
this budget a stage of ordinary tasks stays well inside it; ``app.py`` checks the synthesized
template's exact size for the rest. Params are settings, not data: larger inputs belong in a table
or an SSM parameter the task reads."""


LAMBDA_ENVIRONMENT_MAX_BYTES = 4096
"""A function's environment variables, names and values together: at most 4 KB (Lambda Developer
Guide, "Lambda quotas": Function configuration, deployment, and execution)."""

IAM_ROLE_INLINE_POLICIES_MAX_CHARS = 10_240
"""A role's inline policies together: at most 10,240 characters, whitespace aside (IAM User Guide,
"IAM and AWS STS quotas": Role policy size)."""


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as JavaScript (and so CDK) counts a string."""
    return len(text.encode("utf-16-le")) // 2


ALARM_NAME_MAX_LENGTH = 255
"""``AWS::CloudWatch::Alarm`` ``AlarmName``: 1 to 255 characters (CloudWatch API reference,
PutMetricAlarm)."""

ALARM_DESCRIPTION_MAX_LENGTH = 1024
"""``AlarmDescription``: 0 to 1024 characters (same reference)."""

ALARM_PERIOD_MAX_SECONDS = 86_400
"""The longest period Kairos gives an alarm: a day, the longest the CloudWatch console offers; a
longer one would also leave the last, partial period breaching for most of a day."""

ALARM_RANGE_MAX_SECONDS = 604_800
"""``Period x EvaluationPeriods`` may not exceed seven days (PutMetricAlarm, Period)."""

ALARM_SHORT_PERIOD_SECONDS = 3_600
ALARM_SHORT_PERIOD_RANGE_MAX_SECONDS = 86_400
"""With a period under an hour, ``Period x EvaluationPeriods`` may not exceed one day (same reference)."""

DASHBOARD_MAX_WIDGETS = 500
DASHBOARD_WIDGET_MAX_METRICS = 500
DASHBOARD_MAX_METRICS = 2_500
"""A dashboard holds up to 500 widgets, a widget up to 500 metrics, a dashboard up to 2,500 metrics
across its widgets (CloudWatch User Guide, "CloudWatch service quotas": Dashboards)."""

DASHBOARD_NAME_MAX_LENGTH = 255
"""``AWS::CloudWatch::Dashboard`` ``DashboardName``: 1 to 255 characters."""
