import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

export interface SecurityGroupsProps {
  readonly vpc: ec2.IVpc;
  /** The PostgreSQL port the database listens on. */
  readonly databasePort: number;
}

/**
 * The four security groups of the cluster. Only `workers` and `controller` reach the database port; `quarantine`
 * admits nothing and sends nothing: the runbook fences an old primary by moving it there (ModifyDBInstance).
 */
export class SecurityGroups extends Construct {
  readonly database: ec2.SecurityGroup;
  readonly workers: ec2.SecurityGroup;
  /** For the controller's Lambdas (monitor, runbook) and the credentials rotation. */
  readonly controller: ec2.SecurityGroup;
  readonly quarantine: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: SecurityGroupsProps) {
    super(scope, id);
    if (!Number.isInteger(props.databasePort) || props.databasePort < 1150 || props.databasePort > 65535) {
      throw new Error(`SecurityGroups ${id}: databasePort must be an integer from 1150 to 65535, got ${props.databasePort}`);
    }
    const port = ec2.Port.tcp(props.databasePort);
    this.database = new ec2.SecurityGroup(this, 'Database', {
      vpc: props.vpc,
      description: 'RDS PostgreSQL: PostgreSQL from the workers and the controller only',
      allowAllOutbound: false,
    });
    this.workers = new ec2.SecurityGroup(this, 'Workers', {
      vpc: props.vpc,
      description: 'Buffered workers: no inbound (managed through SSM); out to PostgreSQL and HTTPS to AWS endpoints',
      allowAllOutbound: false,
    });
    this.controller = new ec2.SecurityGroup(this, 'Controller', {
      vpc: props.vpc,
      description: 'Failover controller Lambdas: no inbound; out to PostgreSQL and HTTPS to AWS endpoints',
      allowAllOutbound: false,
    });
    this.quarantine = new ec2.SecurityGroup(this, 'Quarantine', {
      vpc: props.vpc,
      description: 'Fenced former primaries: no inbound, no outbound',
      allowAllOutbound: false,
    });

    for (const [client, label] of [[this.workers, 'workers'], [this.controller, 'controller']] as const) {
      this.database.addIngressRule(client, port, `PostgreSQL from the ${label}`);
      client.addEgressRule(this.database, port, 'PostgreSQL to the database');
      // Without a NAT gateway only VPC endpoints and the S3/DynamoDB gateway endpoints answer on 443.
      client.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to AWS APIs');
    }
  }
}
