"""The IAM model of infra/template.yaml as the deployed stack would create it.

The template is expanded offline by the AWS SAM translator (PyPI
`aws-sam-translator`, the transform CloudFormation runs), then every
intrinsic function is resolved with the test stack's name, account, region
and parameters (tests/iam/matrix.json, "stack"). The result is what
tests/iam/evaluate.mjs feeds to the IAM policy evaluator: each role's trust
policy and identity policies, and each resource policy (bucket policies, key
policies, secret resource policies) by the ARN it guards.
"""

import json
import os
import re
from pathlib import Path

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class NoManagedPolicyLookup:
    """The translator asks IAM for managed policy ARNs by name only when a
    function lists a managed policy by name; the template lists none."""

    def load(self):
        return {}


class Resolver:
    def __init__(self, template, stack):
        self.t = template
        self.stack = stack
        self.params = {}
        for name, p in template.get("Parameters", {}).items():
            if name in stack["parameters"]:
                self.params[name] = stack["parameters"][name]
            elif "Default" in p:
                self.params[name] = p["Default"]
            else:
                raise SystemExit(
                    f"tests/iam/matrix.json: stack.parameters has no value for {name}"
                )
        self.pseudo = {
            "AWS::AccountId": stack["account"],
            "AWS::Region": stack["region"],
            "AWS::Partition": stack["partition"],
            "AWS::StackName": stack["name"],
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:{stack['partition']}:cloudformation:{stack['region']}:"
            f"{stack['account']}:stack/{stack['name']}/00000000",
        }
        self.conditions = {}

    # -- conditions -----------------------------------------------------
    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.t["Conditions"][name]))
        return self.conditions[name]

    def present(self, logical_id):
        c = self.t["Resources"][logical_id].get("Condition")
        return c is None or self.condition(c)

    # -- names and attributes ------------------------------------------------
    def _props(self, logical_id):
        return self.t["Resources"][logical_id].get("Properties", {})

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        res = self.t["Resources"].get(name)
        if res is None:
            raise SystemExit(f"Ref to unknown {name}")
        props = res.get("Properties", {})
        kind = res["Type"]
        explicit = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::IAM::Role": "RoleName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::Logs::LogGroup": "LogGroupName",
        }.get(kind)
        if explicit and explicit in props:
            return self.value(props[explicit])
        if kind == "AWS::Logs::LogGroup":
            return f"{self.stack['name']}-{name}"
        return f"{self.stack['name']}-{name}"

    def getatt(self, name, attr):
        res = self.t["Resources"].get(name)
        if res is None:
            raise SystemExit(f"GetAtt of unknown {name}")
        kind = res["Type"]
        p, r, a = self.stack["partition"], self.stack["region"], self.stack["account"]
        n = self.ref(name)
        if attr != "Arn":
            return f"{n}.{attr}"
        return {
            "AWS::S3::Bucket": f"arn:{p}:s3:::{n}",
            "AWS::IAM::Role": f"arn:{p}:iam::{a}:role/{n}",
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{r}:{a}:table/{n}",
            "AWS::KMS::Key": f"arn:{p}:kms:{r}:{a}:key/{name.lower()}",
            "AWS::SQS::Queue": f"arn:{p}:sqs:{r}:{a}:{n}",
            "AWS::Logs::LogGroup": f"arn:{p}:logs:{r}:{a}:log-group:{n}:*",
            "AWS::Lambda::Function": f"arn:{p}:lambda:{r}:{a}:function:{n}",
            "AWS::SNS::Topic": f"arn:{p}:sns:{r}:{a}:{n}",
        }.get(kind, f"arn:{p}:unknown:{r}:{a}:{name}")

    # -- intrinsic functions ------------------------------------------------
    def sub(self, text, extra=None):
        extra = extra or {}

        def one(m):
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in extra:
                return str(extra[expr])
            if "." in expr and not expr.startswith("AWS::"):
                res, attr = expr.split(".", 1)
                return self.getatt(res, attr)
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, v):
        if isinstance(v, list):
            out = [self.value(x) for x in v]
            return [x for x in out if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if k == "Fn::GetAtt":
                res, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(res, attr)
            if k == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], {n: self.value(x) for n, x in arg[1].items()})
                return self.sub(arg)
            if k == "Fn::Join":
                return arg[0].join(str(x) for x in self.value(arg[1]))
            if k == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if k == "Fn::Split":
                return self.value(arg[1]).split(arg[0])
            if k == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if k == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if k == "Fn::Not":
                return not self.value(arg[0])
            if k == "Fn::And":
                return all(self.value(x) for x in arg)
            if k == "Fn::Or":
                return any(self.value(x) for x in arg)
            if k == "Condition":
                return self.condition(arg)
        out = {k: self.value(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not NO_VALUE}


NO_VALUE = object()


def transformed_template():
    """infra/template.yaml after the SAM transform (intrinsics unresolved)."""
    tpl, errors = decode(str(ROOT / "infra" / "template.yaml"))
    if errors:
        raise SystemExit(f"infra/template.yaml does not parse: {errors}")
    tpl = json.loads(json.dumps(tpl))
    for res in tpl["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            # `sam package` would upload the zip and write its S3 URI here.
            res["Properties"]["CodeUri"] = "s3://code-bucket/function.zip"
    return transform(tpl, {}, NoManagedPolicyLookup())


def build(stack, managed):
    """The model evaluate.mjs reads."""
    # The translator reads the region from the environment (boto3).
    os.environ.setdefault("AWS_DEFAULT_REGION", stack["region"])
    raw = transformed_template()
    rv = Resolver(raw, stack)
    res = raw["Resources"]
    roles, resource_policies = {}, []
    attached = {}  # role name -> [(policy name, document)]
    for lid, r in res.items():
        if not rv.present(lid):
            continue
        props = r.get("Properties", {})
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            doc = rv.value(props["PolicyDocument"])
            for role in rv.value(props.get("Roles", [])):
                attached.setdefault(role, []).append({"name": lid, "policy": doc})
        elif r["Type"] == "AWS::S3::BucketPolicy":
            resource_policies.append(
                {"kind": "s3", "logicalId": lid, "bucket": rv.value(props["Bucket"]),
                 "policy": rv.value(props["PolicyDocument"])}
            )
        elif r["Type"] == "AWS::KMS::Key":
            resource_policies.append(
                {"kind": "kms", "logicalId": lid, "arn": rv.getatt(lid, "Arn"),
                 "policy": rv.value(props["KeyPolicy"])}
            )
        elif r["Type"] == "AWS::SecretsManager::ResourcePolicy":
            resource_policies.append(
                {"kind": "secretsmanager", "logicalId": lid, "arn": rv.value(props["SecretId"]),
                 "policy": rv.value(props["ResourcePolicy"])}
            )
        elif r["Type"] in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            pass  # service-to-service; no principal of ours is governed by them
    for lid, r in res.items():
        if r["Type"] != "AWS::IAM::Role" or not rv.present(lid):
            continue
        props = rv.value(r["Properties"])
        name = rv.ref(lid)
        policies = [
            {"name": p["PolicyName"], "policy": p["PolicyDocument"]}
            for p in props.get("Policies", [])
        ]
        by_arn = {rv.getatt(l, "Arn"): l for l, x in res.items()
                  if x["Type"] == "AWS::IAM::ManagedPolicy"}
        for arn in props.get("ManagedPolicyArns", []):
            if arn in by_arn:
                continue  # attached through the policy's Roles, above
            if arn not in managed:
                raise SystemExit(
                    f"{lid} attaches {arn}: add its document to tests/iam/aws-managed-policies.json"
                )
            policies.append({"name": arn, "policy": managed[arn]["policy"]})
        policies += attached.get(name, [])
        roles[lid] = {
            "name": name,
            "arn": rv.getatt(lid, "Arn"),
            "trust": props["AssumeRolePolicyDocument"],
            "policies": policies,
            "boundary": props.get("PermissionsBoundary"),
        }
    return {"stack": stack, "roles": roles, "resourcePolicies": resource_policies,
            "resolve": rv}
