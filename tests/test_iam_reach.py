"""Who may do what, evaluated as IAM evaluates it, over the roles a moto world holds after bootstrap and deploy.

principalmapper (pmapper, NCC Group) reads each account as its `pmapper graph create` does
(GetAccountAuthorizationDetails and the services' listings, pointed at the moto server), finds every edge by which
one principal can act as another (IAM, STS, Lambda, CloudFormation, EC2, SSM, Auto Scaling) and whether any
principal is or can become an administrator. Its local simulator evaluates one request as IAM does: explicit
denies of the identity's, the resource's and the boundary policies first, then an allow, with the conditions
read from the request's context; a request into another account needs the resource's own policy as well.

The example keeps staging and production in two accounts, as pipec's design asks (PC205 warns when environments
share one: statements on "*", which act on load balancers, security groups and scaling targets, cannot tell one
environment's from another's there; tests/test_cloudformation.py checks every *named* thing apart).
"""

from __future__ import annotations

import collections
import collections.abc
import copy
import fnmatch
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.session
import pytest

from pipec.build import compile_spec
from pipec.plan.model import Plan
from tests.aws_world import (
    PRODUCTION_ACCOUNT,
    STAGING_ACCOUNT,
    World,
    deploy_everywhere,
    moto_server,
    with_existing_networks,
)
from tests.conftest import EXAMPLE, cli

# principalmapper 1.1.5 (its latest) still imports Mapping and MutableMapping from `collections`, where Python
# 3.10 removed them; give them back before it is imported.
collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]
collections.MutableMapping = collections.abc.MutableMapping  # type: ignore[attr-defined]

from principalmapper.common import Graph, Node, Policy  # noqa: E402
from principalmapper.graphing import gathering, iam_edges  # noqa: E402
from principalmapper.querying import query_interface  # noqa: E402
from principalmapper.querying.presets import privesc  # noqa: E402

pytestmark = pytest.mark.slow

# What pmapper looks at for edges between principals, all of which moto serves.
EDGE_SERVICES = ["iam", "sts", "lambda", "cloudformation", "ec2", "ssm", "autoscaling"]
CLIENTS = [*EDGE_SERVICES, "s3", "sns", "sqs", "kms", "secretsmanager"]
NO_POLICY: dict[str, Any] = {"Version": "2012-10-17", "Statement": []}


@dataclass
class Reach:
    world: World
    plan: Plan
    graphs: dict[str, Graph]  # per account


@pytest.fixture(scope="module")
def reach(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reach]:
    workdir = tmp_path_factory.mktemp("reach")
    shutil.copy(EXAMPLE, workdir / "pipeline.yaml")
    with moto_server(managed_policies=True) as url:
        world = World(url)
        spec = workdir / "pipeline.yaml"
        spec.write_text(with_existing_networks(world, spec.read_text(), PRODUCTION_ACCOUNT))
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        deploy_everywhere(world, workdir, ("1.0.0",))
        plan = compile_spec(spec).plan
        regions = list(plan.all_regions)
        yield Reach(world, plan, {account: _graph(world, account, regions)
                                  for account in (STAGING_ACCOUNT, PRODUCTION_ACCOUNT)})


def _graph(world: World, account: str, regions: list[str]) -> Graph:
    env = world.env(account)
    session = botocore.session.Session()
    session.set_credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"])
    session.set_config_variable("region", "us-east-1")
    return gathering.create_graph(session, EDGE_SERVICES, region_allow_list=regions,
                                  client_args_map={name: {"endpoint_url": world.url} for name in CLIENTS})


def _node(graph: Graph, name: str) -> Node:
    return next(n for n in graph.nodes if n.arn.endswith(f":role/{name}"))


def _allowed(node: Node, action: str, resource: str, context: dict[str, Any] | None = None,
             resource_policy: dict[str, Any] | None = None, owner: str | None = None) -> bool:
    owner = owner or resource.split(":")[4] or node.arn.split(":")[4]
    return bool(query_interface.local_check_authorization_full(node, action, resource, context or {},
                                                               resource_policy, owner if resource_policy else None))


def _policy_of(graph: Graph, arn: str) -> dict[str, Any] | None:
    return next((p.policy_doc for p in graph.policies if p.arn == arn), None)


def test_the_graph_holds_every_role_the_example_makes(reach: Reach) -> None:
    """The analyses below see the real world: every bootstrap role and the service roles of every stack."""
    names = {account: {n.arn.split(":role/")[1] for n in graph.nodes} for account, graph in reach.graphs.items()}
    staging, production = names[STAGING_ACCOUNT], names[PRODUCTION_ACCOUNT]
    assert {"stigg-build", "stigg-staging-deploy", "stigg-staging-cfn", "stigg-staging-sanity"} <= staging
    assert {"stigg-production-deploy", "stigg-production-cfn", "stigg-production-sanity"} <= production
    for account, env in ((STAGING_ACCOUNT, "staging"), (PRODUCTION_ACCOUNT, "production")):
        service_roles = [n for n in names[account] if n.startswith(f"stigg/{env}/")]
        # two ECS services with two roles each, two Lambda functions with a runtime and a deploy role each, per region
        assert len(service_roles) == 8 * len(reach.plan.environment(env).regions)


def test_no_role_is_or_can_become_an_administrator(reach: Reach) -> None:
    for account, graph in reach.graphs.items():
        assert [n.arn for n in graph.nodes if n.is_admin] == [], account
        assert [n.arn for n in graph.nodes if privesc.can_privesc(graph, n)[0]] == [], account


def test_only_cloudformation_reaches_other_roles_and_only_its_environments_service_roles(reach: Reach) -> None:
    """pmapper's edges: the only principal that can act as another is an environment's CloudFormation role,
    which CloudFormation alone assumes, and only as that environment's service roles, which its boundary holds:
    it updates their trust policies and functions as the templates change (accepted: that is its job). No edge
    leaves a deploy, sanity or build role, and none reaches a bootstrap role."""
    for graph in reach.graphs.values():
        edges = {(e.source.arn.split(":role/")[1], e.destination.arn.split(":role/")[1]) for e in graph.edges}
        assert edges
        for source, destination in edges:
            env = source.removeprefix("stigg-").removesuffix("-cfn")
            assert source == f"stigg-{env}-cfn", source
            assert destination.startswith(f"stigg/{env}/"), (source, destination)
        # Every role the edges reach carries its environment's boundary (pmapper 1.1.5 leaves roles' boundaries out
        # of its graph, so its edges and admin checks hold even without them; IAM says what they are).
        for node in {e.destination for e in graph.edges}:
            account, name = node.arn.split(":")[4], node.arn.rsplit("/", 1)[1]
            role = reach.world.client("iam", account, "us-east-1").get_role(RoleName=name)["Role"]
            env = role["Path"].split("/")[2]
            assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == (
                f"arn:aws:iam::{account}:policy/stigg-{env}-service-boundary"), node.arn


def test_pmapper_does_find_an_escalation_when_a_role_has_one(reach: Reach) -> None:
    """The analyses above can fail: give the staging deploy role one more statement and pmapper says so."""
    graph = reach.graphs[STAGING_ACCOUNT]
    deploy, cfn = _node(graph, "stigg-staging-deploy"), _node(graph, "stigg-staging-cfn")

    def granted(statement: dict[str, Any]) -> Node:
        node = copy.deepcopy(deploy)
        node.attached_policies.append(Policy(node.arn, "planted", {"Version": "2012-10-17",
                                                                   "Statement": [statement]}))
        return node

    admin = granted({"Effect": "Allow", "Action": "iam:PutRolePolicy", "Resource": deploy.arn})
    gathering.update_admin_status([admin])
    assert admin.is_admin
    trust = granted({"Effect": "Allow", "Action": "iam:UpdateAssumeRolePolicy", "Resource": cfn.arn})
    found = iam_edges.generate_edges_locally([trust, cfn])
    assert [(e.source.arn, e.destination.arn) for e in found] == [(deploy.arn, cfn.arn)]


def _release_bucket(reach: Reach) -> tuple[str, list[str]]:
    """The bucket that holds releases, and every key under releases/, as the build environment's account has them."""
    s3 = reach.world.client("s3", STAGING_ACCOUNT, "us-east-1")
    for bucket in s3.list_buckets()["Buckets"]:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket["Name"], Prefix="releases/").get("Contents", [])]
        if keys:
            return bucket["Name"], keys
    raise AssertionError("no bucket holds releases")


def test_only_the_build_role_writes_releases_and_only_once(reach: Reach) -> None:
    """The release bucket's policy, evaluated with the roles' own: the staging deploy role's artifact statement
    alone would let it overwrite a release (it covers every bucket of the environment); the bucket's policy
    denies it, and every delete. The build role writes only objects that do not exist yet (s3:if-none-match)."""
    graph = reach.graphs[STAGING_ACCOUNT]
    bucket, keys = _release_bucket(reach)
    policy = _policy_of(graph, f"arn:aws:s3:::{bucket}")
    assert policy is not None
    deploy, build = _node(graph, "stigg-staging-deploy"), _node(graph, "stigg-build")
    assert len(keys) > 5
    for key in keys:
        arn = f"arn:aws:s3:::{bucket}/{key}"
        assert _allowed(deploy, "s3:PutObject", arn)  # its identity policy alone
        for node in (deploy, build, _node(graph, "stigg-staging-cfn"), _node(graph, "stigg-staging-sanity")):
            for context in ({}, {"s3:if-none-match": "*"}):
                for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
                    assert (_allowed(node, action, arn, context, policy)
                            == (node is build and action == "s3:PutObject" and context != {})), (node.arn, action)
        assert _allowed(deploy, "s3:GetObject", arn, {}, policy)


def test_the_plan_role_plans_production_and_changes_nothing(reach: Reach) -> None:
    """Production's plan role (before the approval, on the release branch): change sets on production's stacks,
    their templates, the ledgers and the releases; never an execution, a role to pass, a write, or staging."""
    graph = reach.graphs[PRODUCTION_ACCOUNT]
    planner = _node(graph, "stigg-production-plan")
    assert not [n for n in reach.graphs[STAGING_ACCOUNT].nodes if n.arn.endswith(":role/stigg-staging-plan")]
    stack = f"arn:aws:cloudformation:us-east-1:{PRODUCTION_ACCOUNT}:stack/stigg-production-api/x"
    for action in ("cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet",
                   "cloudformation:DeleteChangeSet", "cloudformation:GetTemplate", "cloudformation:DescribeStacks"):
        assert _allowed(planner, action, stack), action
    for action in ("cloudformation:ExecuteChangeSet", "cloudformation:UpdateStack", "cloudformation:DeleteStack",
                   "cloudformation:CreateStack"):
        assert not _allowed(planner, action, stack), action
    cfn_role = f"arn:aws:iam::{PRODUCTION_ACCOUNT}:role/stigg-production-cfn"
    assert not _allowed(planner, "iam:PassRole", cfn_role, {"iam:PassedToService": "cloudformation.amazonaws.com"})
    ledger = f"arn:aws:ssm:us-east-1:{PRODUCTION_ACCOUNT}:parameter/pipec/stigg/production/api"
    assert _allowed(planner, "ssm:GetParameter", ledger) and not _allowed(planner, "ssm:PutParameter", ledger)
    bucket, keys = _release_bucket(reach)
    policy = _policy_of(reach.graphs[STAGING_ACCOUNT], f"arn:aws:s3:::{bucket}")
    release = f"arn:aws:s3:::{bucket}/{keys[0]}"
    assert _allowed(planner, "s3:GetObject", release, {}, policy, STAGING_ACCOUNT)
    assert not _allowed(planner, "s3:PutObject", release, {"s3:if-none-match": "*"}, policy, STAGING_ACCOUNT)
    staging = f"arn:aws:cloudformation:us-east-1:{STAGING_ACCOUNT}:stack/stigg-staging-api/x"
    assert not _allowed(planner, "cloudformation:CreateChangeSet", staging)


def _stack_resources(world: World, account: str, region: str) -> Iterator[tuple[str, str, str]]:
    """Every resource of every stack of an account's region: (stack id, type, physical id)."""
    cfn = world.client("cloudformation", account, region)
    for stack in cfn.list_stacks()["StackSummaries"]:
        for resource in cfn.list_stack_resources(StackName=stack["StackName"])["StackResourceSummaries"]:
            yield stack["StackId"], resource["ResourceType"], resource.get("PhysicalResourceId", "")


def _made_by_stacks(world: World, account: str, region: str, kind: str) -> set[str]:
    return {physical for _, found, physical in _stack_resources(world, account, region) if found == kind}


def test_the_deploy_role_writes_its_ledgers_never_the_shared_infrastructure(reach: Reach) -> None:
    """Every SSM parameter a stack made (the network, the key, the alerts topic that service stacks read) is
    closed to the deploy role; the parameters that pipec's deploy wrote (the ledgers) are open to it."""
    graph = reach.graphs[STAGING_ACCOUNT]
    deploy = _node(graph, "stigg-staging-deploy")
    ssm = reach.world.client("ssm", STAGING_ACCOUNT, "us-east-1")
    every = {p["Name"] for p in ssm.describe_parameters()["Parameters"]}
    shared = _made_by_stacks(reach.world, STAGING_ACCOUNT, "us-east-1", "AWS::SSM::Parameter")
    ledgers = every - shared
    assert len(shared) >= 5 and len(ledgers) == len(reach.plan.services)
    for name in every:
        arn = f"arn:aws:ssm:us-east-1:{STAGING_ACCOUNT}:parameter{name}"
        for action in ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:LabelParameterVersion"):
            assert _allowed(deploy, action, arn) == (name in ledgers and action == "ssm:PutParameter"), (name, action)
        assert _allowed(deploy, "ssm:GetParameter", arn)


# CloudFormation's physical id of a resource, as the ARN that IAM names it by (where the id is not the ARN already).
# A type neither here, nor an ARN, nor in _NOT_A_RESOURCE fails the test: map it deliberately.
_ARN_OF = {
    "AWS::EC2::SecurityGroup": "arn:aws:ec2:{region}:{account}:security-group/{id}",
    "AWS::EC2::VPC": "arn:aws:ec2:{region}:{account}:vpc/{id}",
    "AWS::EC2::Subnet": "arn:aws:ec2:{region}:{account}:subnet/{id}",
    "AWS::EC2::RouteTable": "arn:aws:ec2:{region}:{account}:route-table/{id}",
    "AWS::EC2::InternetGateway": "arn:aws:ec2:{region}:{account}:internet-gateway/{id}",
    "AWS::EC2::NatGateway": "arn:aws:ec2:{region}:{account}:natgateway/{id}",
    "AWS::EC2::EIP": "arn:aws:ec2:{region}:{account}:elastic-ip/{id}",
    "AWS::EC2::FlowLog": "arn:aws:ec2:{region}:{account}:vpc-flow-log/{id}",
    "AWS::EC2::VPCEndpoint": "arn:aws:ec2:{region}:{account}:vpc-endpoint/{id}",
    "AWS::ECR::Repository": "arn:aws:ecr:{region}:{account}:repository/{id}",
    # A registry's setting, managed by actions IAM authorizes on no resource of its own: named here so that any
    # statement of "*" (or of the whole registry) reaching it is found.
    "AWS::ECR::RepositoryCreationTemplate": "arn:aws:ecr:{region}:{account}:repository-creation-template/{id}",
    "AWS::ECS::Cluster": "arn:aws:ecs:{region}:{account}:cluster/{id}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{id}",
    "AWS::KMS::Alias": "arn:aws:kms:{region}:{account}:{id}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{id}",
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{id}",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{id}",
    "AWS::S3::Bucket": "arn:aws:s3:::{id}",
    "AWS::S3::BucketPolicy": "arn:aws:s3:::{id}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{last}",
    "AWS::SSM::Parameter": "arn:aws:ssm:{region}:{account}:parameter{id}",
    "AWS::CloudWatch::Alarm": "arn:aws:cloudwatch:{region}:{account}:alarm:{id}",
    "AWS::CloudWatch::Dashboard": "arn:aws:cloudwatch::{account}:dashboard/{id}",
    "AWS::CodeDeploy::Application": "arn:aws:codedeploy:{region}:{account}:application:{id}",
    "AWS::Events::Rule": "arn:aws:events:{region}:{account}:rule/{id}",
    "AWS::IAM::OIDCProvider": "{id}",
}
# Types whose physical id names no resource of their own (a rule inside a security group, a subnet's association).
_NOT_A_RESOURCE = {"AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress", "AWS::Lambda::Version",
                   "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::Route", "AWS::EC2::VPCGatewayAttachment"}


def _arns(world: World, account: str, regions: list[str]) -> set[str]:
    """Every resource of every stack of an account, the stacks themselves, and the objects of its buckets."""
    found = set()
    for region in regions:
        for stack, kind, physical in _stack_resources(world, account, region):
            found.add(stack)
            if kind in _NOT_A_RESOURCE or not physical:
                continue
            if physical.startswith("arn:"):
                found.add(physical)
                continue
            assert kind in _ARN_OF, f"map {kind} ({physical}) to its ARN"
            found.add(_ARN_OF[kind].format(region=region, account=account, id=physical,
                                           last=physical.rsplit("/", 1)[-1]))
    iam = world.client("iam", account, "us-east-1")
    found |= {role["Arn"] for role in iam.list_roles()["Roles"]}
    s3 = world.client("s3", account, "us-east-1")
    for bucket in s3.list_buckets()["Buckets"]:
        found |= {f"arn:aws:s3:::{bucket['Name']}/{o['Key']}"
                  for o in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", [])}
        found.add(f"arn:aws:s3:::{bucket['Name']}/any-new-object")
    return found


def _statements(node: Node) -> Iterator[dict[str, Any]]:
    for policy in node.attached_policies:
        yield from policy.policy_doc["Statement"]


def _actions(node: Node) -> set[str]:
    """Every action an Allow statement of the node's policies names, wildcards expanded by the IAM reference."""
    from policy_sentry.querying.actions import get_actions_for_service

    named = set()
    for statement in _statements(node):
        if statement["Effect"] == "Allow":
            actions = statement.get("Action", [])
            named |= {actions} if isinstance(actions, str) else set(actions)
    expanded = set()
    for action in named:
        service = action.split(":")[0]
        every = get_actions_for_service(service) if "*" in action else [action]
        expanded |= {a for a in every if fnmatch.fnmatchcase(a.lower(), action.lower())}
    return expanded


def _contexts(node: Node, region: str) -> list[dict[str, Any]]:
    """The requests a caller may shape: each value that a condition of its policies asks for, one at a time (a
    caller chooses the service it passes a role to, the alias of a key it names, the region it calls)."""
    contexts: list[dict[str, Any]] = [{"aws:RequestedRegion": region}]
    for statement in _statements(node):
        for test in statement.get("Condition", {}).values():
            for key, values in test.items():
                for value in [values] if isinstance(values, str) else values:
                    contexts.append({"aws:RequestedRegion": region, key: value})
    return contexts


def _resource_policy(reach: Reach, arn: str, account: str) -> dict[str, Any]:
    """A resource's own policy in its account, or none: a request from another account needs one to allow it."""
    if ":iam::" in arn:  # a role's is its trust policy; a managed policy has none
        node = next((n for n in reach.graphs[account].nodes if n.arn == arn), None)
        return node.trust_policy if node is not None else NO_POLICY
    bucket = arn.split(":::", 1)[1].split("/", 1)[0] if arn.startswith("arn:aws:s3:::") else None
    policy = _policy_of(reach.graphs[account], f"arn:aws:s3:::{bucket}" if bucket else arn)
    return policy if policy is not None and policy.get("Statement") else NO_POLICY  # (pmapper: a bucket without)


def test_no_staging_principal_may_act_on_any_production_resource(reach: Reach) -> None:
    """Every principal of the staging account (deploy, CloudFormation, sanity, build, every service role), every
    action its policies allow (wildcards expanded), on every resource of the production account (each stack, each
    thing in it, each role, each object), with whatever condition value it may choose: denied. A request into
    another account needs the resource's own policy to allow it too, so each is evaluated with that policy (a
    bucket's, a key's, a role's trust)."""
    production = _arns(reach.world, PRODUCTION_ACCOUNT, list(reach.plan.all_regions))
    kinds = {arn.split(":")[2] for arn in production}
    # (moto makes no alarms or CodeDeploy applications from a template; their names are checked apart from other
    # environments' by tests/test_cloudformation.py)
    assert {"cloudformation", "ecs", "elasticloadbalancing", "lambda", "iam", "s3", "ssm", "kms", "logs", "sns",
            "sqs", "ec2", "ecr"} <= kinds, kinds
    checked, reached = 0, []
    for node in reach.graphs[STAGING_ACCOUNT].nodes:
        actions = _actions(node)
        for arn in sorted(production):
            service = arn.split(":")[2]
            region = arn.split(":")[3] or "us-east-1"
            policy = _resource_policy(reach, arn, PRODUCTION_ACCOUNT)
            for action in (a for a in actions if a.split(":")[0] == service):
                for context in _contexts(node, region):
                    checked += 1
                    if _allowed(node, action, arn, context, policy, PRODUCTION_ACCOUNT):
                        reached.append((node.arn, action, arn))
                        break
    assert checked > 1000
    assert reached == []
