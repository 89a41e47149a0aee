import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { InterfaceEndpointName } from './config.js';

const ENDPOINT_SERVICES: Record<InterfaceEndpointName, ec2.InterfaceVpcEndpointAwsService> = {
  ssm: ec2.InterfaceVpcEndpointAwsService.SSM,
  ssmmessages: ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
  ec2messages: ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
  secretsmanager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
  monitoring: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
  logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  kms: ec2.InterfaceVpcEndpointAwsService.KMS,
  rds: ec2.InterfaceVpcEndpointAwsService.RDS,
  sns: ec2.InterfaceVpcEndpointAwsService.SNS,
  xray: ec2.InterfaceVpcEndpointAwsService.XRAY,
  states: ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
  sqs: ec2.InterfaceVpcEndpointAwsService.SQS,
  ec2: ec2.InterfaceVpcEndpointAwsService.EC2,
  sts: ec2.InterfaceVpcEndpointAwsService.STS,
  events: ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
};

/** Subnet group names: a contract with the other constructs (and construct ids: renaming replaces subnets). */
export const SUBNET_GROUPS = { data: 'data', workers: 'workers', public: 'public' } as const;

export interface NetworkProps {
  /** IPv4 CIDR, /16 to /20. */
  readonly cidr: string;
  /** 2 or 3 (3 needs a pinned environment). */
  readonly maxAzs: number;
  /**
   * NAT gateways (adds public subnets; the workers' subnets then have egress).
   * @default 0
   */
  readonly natGateways?: number;
  /** Interface endpoints so that isolated subnets reach AWS APIs. */
  readonly interfaceEndpoints: readonly InterfaceEndpointName[];
  /** Encrypts the flow-log group. */
  readonly logKey: kms.IKey;
  /**
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly flowLogRetention?: logs.RetentionDays;
}

/**
 * VPC across 2-3 AZs: isolated `data` subnets for RDS, `workers` subnets for the EC2 workers and the controller's
 * Lambdas, flow logs (ALL) to a KMS-encrypted log group, S3 and DynamoDB gateway endpoints (the AL2023 package
 * repositories and CDK assets are in S3) and the interface endpoints the workers and Lambdas call.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  readonly dataSubnets: ec2.SubnetSelection = { subnetGroupName: SUBNET_GROUPS.data };
  readonly workerSubnets: ec2.SubnetSelection = { subnetGroupName: SUBNET_GROUPS.workers };
  readonly endpointSecurityGroup: ec2.SecurityGroup;
  readonly flowLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    const natGateways = props.natGateways ?? 0;
    if (props.maxAzs < 2 || props.maxAzs > 3) throw new Error(`Network ${id}: maxAzs must be 2 or 3, got ${props.maxAzs}`);
    if (natGateways < 0 || natGateways > props.maxAzs) throw new Error(`Network ${id}: natGateways must be 0 to maxAzs (${props.maxAzs}), got ${natGateways}`);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr),
      maxAzs: props.maxAzs,
      natGateways,
      restrictDefaultSecurityGroup: true,
      subnetConfiguration: [
        ...(natGateways > 0 ? [{ name: SUBNET_GROUPS.public, subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }] : []),
        { name: SUBNET_GROUPS.data, subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
        {
          name: SUBNET_GROUPS.workers,
          subnetType: natGateways > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED,
          cidrMask: 24,
        },
      ],
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
    });

    this.flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
      encryptionKey: props.logKey,
      retention: props.flowLogRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(this.flowLogGroup),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });

    this.endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointsSg', {
      vpc: this.vpc,
      description: 'Interface VPC endpoints: HTTPS from inside the VPC only',
      allowAllOutbound: false,
    });
    this.endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(props.cidr), ec2.Port.tcp(443), 'HTTPS from the VPC');
    for (const name of props.interfaceEndpoints) {
      this.vpc.addInterfaceEndpoint(`Endpoint-${name}`, {
        service: ENDPOINT_SERVICES[name],
        subnets: this.workerSubnets,
        securityGroups: [this.endpointSecurityGroup],
        privateDnsEnabled: true,
        open: false,
      });
    }
  }
}
