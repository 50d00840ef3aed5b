import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type { Construct } from 'constructs';
import { HTTP_PORT } from './constants.js';

const VPC_CIDR = '10.40.0.0/16';

export interface WorkerNetwork {
  vpc: ec2.Vpc;
  /** The workers' own group: outbound only, but for the scraper group's port. */
  workerSg: ec2.SecurityGroup;
  /** Attach to what scrapes the workers: the only source the workers' HTTP port admits. */
  scraperSg: ec2.SecurityGroup;
}

/**
 * The workers' network: two AZs, private subnets behind one NAT gateway, S3 through a
 * gateway endpoint, and Session Manager and CloudWatch Logs through interface endpoints
 * that answer the workers only. Made in `scope` itself, so the logical ids are the stack's.
 */
export function workerNetwork(scope: Construct): WorkerNetwork {
  const vpc = new ec2.Vpc(scope, 'Vpc', {
    ipAddresses: ec2.IpAddresses.cidr(VPC_CIDR),
    maxAzs: 2,
    natGateways: 1,
    subnetConfiguration: [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
      { name: 'workers', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
    ],
    flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(), trafficType: ec2.FlowLogTrafficType.REJECT } },
    // Code and outputs stay off the NAT gateway.
    gatewayEndpoints: { s3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
  });

  const workerSg = new ec2.SecurityGroup(scope, 'WorkerSecurityGroup', { vpc, description: 'NanoGrid workers: outbound to AWS APIs, Redis and the image registry', allowAllOutbound: true });
  // The port is open only to what needs it: a group of its own that operators attach to
  // their Prometheus (or anything else that reads /health, /status and /metrics). A
  // state-changing request on it needs the admin token besides (src/observe/http.ts).
  const scraperSg = new ec2.SecurityGroup(scope, 'ScraperSecurityGroup', { vpc, description: 'NanoGrid: attach to what scrapes the workers (Prometheus, health checks)', allowAllOutbound: false });
  scraperSg.addEgressRule(workerSg, ec2.Port.tcp(HTTP_PORT), 'the workers\' health, status and metrics');
  workerSg.addIngressRule(scraperSg, ec2.Port.tcp(HTTP_PORT), 'health, status and Prometheus scrapes from the scraper group only');

  // Session Manager reaches the workers without SSH, a bastion or an open port, and
  // without the NAT gateway: its three services through endpoints in the workers'
  // subnets, which answer the workers only (HTTPS).
  // CloudWatch Logs too: the agents' lines stay off the NAT gateway.
  const endpointSg = new ec2.SecurityGroup(scope, 'EndpointSecurityGroup', { vpc, description: 'NanoGrid: Session Manager and CloudWatch Logs endpoints, HTTPS from the workers only', allowAllOutbound: false });
  endpointSg.addIngressRule(workerSg, ec2.Port.tcp(443), 'workers');
  for (const [id, service] of [
    ['SsmEndpoint', ec2.InterfaceVpcEndpointAwsService.SSM],
    ['SsmMessagesEndpoint', ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES],
    ['Ec2MessagesEndpoint', ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES],
    ['LogsEndpoint', ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS],
  ] as const) {
    vpc.addInterfaceEndpoint(id, { service, subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }, privateDnsEnabled: true, securityGroups: [endpointSg], open: false });
  }
  return { vpc, workerSg, scraperSg };
}
