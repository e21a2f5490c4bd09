"""CDK constructs and stacks that turn a :class:`kairos.plan.StagePlan` into AWS resources."""
