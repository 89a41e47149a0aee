import { Duration } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { topologyParameterName, writerParameterName, type TopologyDocument } from './topology.js';

export interface WriterEndpointProps {
  readonly clusterId: string;
  readonly vpc: ec2.IVpc;
  /** Private hosted zone name, e.g. orders.rds-failover.internal. */
  readonly zoneName: string;
  /** Label of the record inside the zone, e.g. writer. */
  readonly recordName: string;
  /**
   * TTL of the CNAME: how long clients may keep resolving the old primary after a repoint.
   * @default Duration.seconds(5)
   */
  readonly ttl?: Duration;
  /** Endpoint address of the current primary. */
  readonly primaryAddress: string;
  /** DB instance identifier of the current primary. */
  readonly primaryInstanceId: string;
  readonly topology: TopologyDocument;
}

/**
 * The stable writer endpoint: `writer.<zone>` CNAME to the primary in a private hosted zone, plus the SSM parameters
 * holding the writer instance id and the topology (JSON). The failover runbook updates all three.
 */
export class WriterEndpoint extends Construct {
  readonly zone: route53.PrivateHostedZone;
  readonly record: route53.CnameRecord;
  /** Fully-qualified name the workers connect to. */
  readonly fqdn: string;
  readonly writerParameter: ssm.StringParameter;
  readonly topologyParameter: ssm.StringParameter;

  constructor(scope: Construct, id: string, props: WriterEndpointProps) {
    super(scope, id);
    const ttl = props.ttl ?? Duration.seconds(5);
    if (ttl.toSeconds() < 1 || ttl.toSeconds() > 300) throw new Error(`WriterEndpoint ${id}: ttl must be 1 to 300 seconds, got ${ttl.toSeconds()}`);
    if (props.topology.clusterId !== props.clusterId) {
      throw new Error(`WriterEndpoint ${id}: topology is for cluster '${props.topology.clusterId}', not '${props.clusterId}'`);
    }

    this.zone = new route53.PrivateHostedZone(this, 'Zone', {
      zoneName: props.zoneName,
      vpc: props.vpc,
      comment: `rds-failover ${props.clusterId}: writer endpoint (repointed by the failover runbook)`,
    });
    this.fqdn = `${props.recordName}.${props.zoneName}`;
    this.record = new route53.CnameRecord(this, 'Writer', {
      zone: this.zone,
      recordName: props.recordName,
      domainName: props.primaryAddress,
      ttl,
      comment: 'Current PostgreSQL primary',
    });
    this.writerParameter = new ssm.StringParameter(this, 'WriterInstanceId', {
      parameterName: writerParameterName(props.clusterId),
      stringValue: props.primaryInstanceId,
      description: `rds-failover ${props.clusterId}: DB instance identifier of the current primary`,
    });
    this.topologyParameter = new ssm.StringParameter(this, 'Topology', {
      parameterName: topologyParameterName(props.clusterId),
      stringValue: JSON.stringify(props.topology),
      description: `rds-failover ${props.clusterId}: primary and replicas (JSON); read back by rds-failover reconcile`,
    });
  }
}
