"""moto's server, with the CloudFormation support the deploy smoke test needs and moto 5 lacks.

* ``AWS::Scheduler::ScheduleGroup`` and ``AWS::Scheduler::Schedule``: moto implements the Scheduler
  API but skips these resource types, so a template that reads a schedule group's ``Arn`` (every
  CDK ``LambdaInvoke`` target role does, in its trust policy) fails to deploy. The two models below
  create them through moto's own Scheduler backend, so the test can read the schedules back.
* ``AWS::Lambda::Function``: moto's CloudFormation passes neither ``Layers`` nor ``Architectures``
  to the function it creates (its Lambda API does accept both); the wrapper below adds them.
* ``AWS::KMS::Key``: moto's CloudFormation hands the template's tags (``Key``/``Value``, as
  CloudFormation writes them) to its KMS backend, which reads the API's ``TagKey``/``TagValue`` and
  fails; the wrapper below renames them. (Every stage's alarm topic has a KMS key, stack-tagged.)
* ``Fn::GetStackOutput``: the weak cross-stack reference (docs/adr/0110) a shard stack reads the core
  stack's values with (docs/adr/0180); moto 5 knows ``Fn::ImportValue`` only. The wrapper below reads
  the named output of the named stack, as CloudFormation does at deploy time.

Run as ``python moto_server_with_scheduler.py -H 127.0.0.1 -p PORT`` (moto_server's arguments).
"""

from __future__ import annotations

import sys
from typing import Any

from moto.awslambda.models import LambdaFunction
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import cloudformation_backends
from moto.core.common_models import CloudFormationModel
from moto.kms.models import Key
from moto.scheduler.models import EventBridgeSchedulerBackend, Schedule, ScheduleGroup, scheduler_backends
from moto.server import main


def _backend(account_id: str, region_name: str) -> EventBridgeSchedulerBackend:
    return scheduler_backends[account_id][region_name]


class ScheduleGroupResource(CloudFormationModel):
    # moto files every model under the service named by its module's second dotted part.
    __module__ = "moto.scheduler.cloudformation"

    def __init__(self, group: ScheduleGroup) -> None:
        self.group = group

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Scheduler::ScheduleGroup"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @property
    def physical_resource_id(self) -> str:
        return self.group.name

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "CreationDate", "LastModificationDate", "State")

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.group.to_dict()[attribute_name]

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ScheduleGroupResource:
        name = cloudformation_json.get("Properties", {}).get("Name") or resource_name
        return cls(_backend(account_id, region_name).create_schedule_group(name=name, tags=[]))

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: ScheduleGroupResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ScheduleGroupResource:
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        _backend(account_id, region_name).schedule_groups.pop(resource_name, None)

    def is_created(self) -> bool:
        return True


class ScheduleResource(CloudFormationModel):
    __module__ = "moto.scheduler.cloudformation"

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Scheduler::Schedule"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @property
    def physical_resource_id(self) -> str:
        return str(self.schedule.name)

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.schedule.arn

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ScheduleResource:
        properties = cloudformation_json.get("Properties", {})
        schedule = _backend(account_id, region_name).create_schedule(
            description=properties.get("Description", ""),
            end_date=properties.get("EndDate"),
            flexible_time_window=properties.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            group_name=properties.get("GroupName", "default"),
            kms_key_arn=properties.get("KmsKeyArn"),
            name=properties.get("Name") or resource_name,
            schedule_expression=properties["ScheduleExpression"],
            schedule_expression_timezone=properties.get("ScheduleExpressionTimezone", "UTC"),
            start_date=properties.get("StartDate"),
            state=properties.get("State", "ENABLED"),
            target=properties["Target"],
            action_after_completion=None,
        )
        return cls(schedule)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: ScheduleResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ScheduleResource:
        old = original_resource.schedule
        _backend(account_id, region_name).delete_schedule(group_name=old.group_name, name=old.name)
        return cls.create_from_cloudformation_json(old.name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        group = cloudformation_json.get("Properties", {}).get("GroupName", "default")
        _backend(account_id, region_name).delete_schedule(group_name=group, name=resource_name)

    def is_created(self) -> bool:
        return True


_create_function = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
_update_function = LambdaFunction.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _with_layer_arns(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
    """moto resolves a ``Ref`` to a layer version into the model object, not its ARN."""
    properties = dict(cloudformation_json["Properties"])
    if "Layers" in properties:
        properties["Layers"] = [getattr(layer, "arn", layer) for layer in properties["Layers"]]
    return {**cloudformation_json, "Properties": properties}


def _create_function_with_layers(
    cls: type[LambdaFunction],
    /,
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> LambdaFunction:
    cloudformation_json = _with_layer_arns(cloudformation_json)
    function: LambdaFunction = _create_function(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    properties = cloudformation_json["Properties"]
    if properties.get("Layers"):
        function.layers = function._get_layers_data(properties["Layers"])
    if properties.get("Architectures"):
        function.architectures = properties["Architectures"]
    return function


def _update_function_with_layers(
    cls: type[LambdaFunction],
    original_resource: LambdaFunction,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> LambdaFunction:
    cloudformation_json = _with_layer_arns(cloudformation_json)
    return _update_function(  # type: ignore[no-any-return]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    )


LambdaFunction.create_from_cloudformation_json = classmethod(_create_function_with_layers)  # type: ignore[assignment,method-assign]
LambdaFunction.update_from_cloudformation_json = classmethod(_update_function_with_layers)  # type: ignore[assignment,method-assign]


_create_key = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_key_with_api_tags(
    cls: type[Key],
    /,
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Key:
    properties = dict(cloudformation_json["Properties"])
    properties["Tags"] = [{"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties.get("Tags", [])]
    return _create_key(  # type: ignore[no-any-return]
        cls, resource_name, {**cloudformation_json, "Properties": properties}, account_id, region_name, **kwargs
    )


Key.create_from_cloudformation_json = classmethod(_create_key_with_api_tags)  # type: ignore[assignment,method-assign]


_clean_json = parsing.clean_json


def _clean_json_with_stack_outputs(resource_json: Any, resources_map: Any) -> Any:
    if isinstance(resource_json, dict) and set(resource_json) == {"Fn::GetStackOutput"}:
        reference = resource_json["Fn::GetStackOutput"]
        stack_name = _clean_json(reference["StackName"], resources_map)
        output_name = _clean_json(reference["OutputName"], resources_map)
        backend = cloudformation_backends[resources_map._account_id][resources_map._region_name]
        for stack in backend.stacks.values():
            if stack.name == stack_name and not stack.status.startswith("DELETE"):
                for output in stack.output_map.values():
                    if output is not None and output.key == output_name:
                        return output.value
        raise ValidationError(stack_name, f"stack {stack_name} has no output {output_name}")
    return _clean_json(resource_json, resources_map)


parsing.clean_json = _clean_json_with_stack_outputs


if __name__ == "__main__":
    main(sys.argv[1:])
