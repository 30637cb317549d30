"""Descriptions: agreements, settlement, reconciliation, connectors, webhooks and audit."""

TEXT = """
Agreement: A cooperation agreement between two operators: what their members may do across the programs, the fee, and how often they settle.
Agreement.code: Stable code, e.g. seoul-busan.
Agreement.feeBps: Fee on each cross-program movement, in basis points of its won value: feeWon = floor(wonValue x feeBps / 10000).
Agreement.settlementPeriod: How often the two operators settle, counted from startsOn.
Agreement.startsOn: First day the agreement applies, Asia/Seoul.
Agreement.endsOn: Last day the agreement applies; null: open-ended.
Agreement.status: Whether the agreement is in force.
Agreement.operatorA: One operator party to the agreement.
Agreement.operatorB: The other operator party to the agreement.
AgreementStatus: Whether an agreement is in force.
AgreementStatus.ACTIVE: In force: cross-program movements it allows are accepted.
AgreementStatus.SUSPENDED: Suspended: no new cross-program movements under it (NO_AGREEMENT); its settlements remain.
AgreementStatus.ENDED: Ended: no new cross-program movements under it (NO_AGREEMENT); its settlements remain.
SettlementPeriod: How often two operators settle.
SettlementPeriod.DAILY: Every day, Asia/Seoul.
SettlementPeriod.WEEKLY: Every seven days from the agreement's startsOn.
SettlementPeriod.MONTHLY: Every calendar month.
SettlementStatus: Where a settlement stands.
SettlementStatus.OPEN: The current period: lines and net are provisional and there is no document yet (empty digest, signature, documentUrl).
SettlementStatus.CLOSED: Sealed and signed; waiting for both operators to confirm (confirmedBy lists who did).
SettlementStatus.CONFIRMED: Both operators confirmed the digest; final.
SettlementStatus.DISPUTED: An operator disputed it (disputeReason); the figures stay as closed.
FlowKind: The kind of a cross-program movement between two operators.
FlowKind.CROSS_REDEMPTION: A member of one operator paid at a merchant of the other.
FlowKind.CROSS_REFUND: A refund of a cross redemption; runs the other way.
FlowKind.EXCHANGE: Points exchanged from a member of one operator to a member of the other.
Settlement: What two operators owe each other for one period of their agreement, signed (docs/settlement.md).
Settlement.periodStart: First day of the period, Asia/Seoul.
Settlement.periodEnd: Last day of the period (inclusive), Asia/Seoul.
Settlement.status: Where the settlement stands.
Settlement.agreement: The agreement settled.
Settlement.lines: One line per flow kind and direction.
Settlement.netPayee: Who receives the net amount; null when it nets to zero.
Settlement.netWon: What netPayer owes netPayee, in won: the difference of the two directions' net sums.
Settlement.digest: Lowercase hex SHA-256 of the canonical JSON document (RFC 8785); empty while OPEN.
Settlement.signature: Detached compact JWS (EdDSA) over the canonical JSON, verifiable with /.well-known/jwks.json; empty while OPEN.
Settlement.confirmedBy: The operators that confirmed the digest.
Settlement.disputeReason: The latest standing dispute's reason; null when none.
SettlementLine: The sum of one kind of movement in one direction for the period.
SettlementLine.kind: The kind of movement.
SettlementLine.count: How many movements.
SettlementLine.grossWon: Sum of their won values.
SettlementLine.feeWon: Sum of their fees (each floor(wonValue x feeBps / 10000)); the payer keeps them.
SettlementLine.netWon: grossWon - feeWon: what the payer owes the payee on this line.
SettlementLine.payer: The operator whose points were spent.
SettlementLine.payee: The operator whose merchant or member received the value.
CloseSettlementInput: Closes an agreement's period now.
CloseSettlementInput.agreementCode: The agreement's code.
ConfirmSettlementInput: An operator's confirmation of a closed settlement.
ConfirmSettlementInput.settlementId: The settlement's id.
DisputeSettlementInput: An operator's dispute of a closed settlement.
DisputeSettlementInput.settlementId: The settlement's id.
DisputeSettlementInput.reason: Why, up to 2,000 characters; shown to both operators as disputeReason.
ReconciliationStatus: Where a reconciliation run (or a connector run) stands.
ReconciliationStatus.RUNNING: Started, not finished.
ReconciliationStatus.COMPLETED: Finished; its figures are final.
ReconciliationStatus.FAILED: Stopped by an error; see its error.
ReconciliationRun: A comparison of an operator's records of a period with the gateway's movements.
ReconciliationRun.periodStart: First day compared, Asia/Seoul.
ReconciliationRun.periodEnd: Last day compared (inclusive), Asia/Seoul.
ReconciliationRun.status: Where the run stands.
ReconciliationRun.partnerRecords: Records the operator reported: matched + missingInGateway + amountMismatch + duplicates.
ReconciliationRun.matched: Records that matched a gateway movement exactly.
ReconciliationRun.missingInGateway: Records the gateway has no movement for.
ReconciliationRun.missingAtPartner: Gateway movements of the period absent from the report.
ReconciliationRun.amountMismatch: Pairs whose amounts differ.
ReconciliationRun.duplicates: References reported more often than the movement happened.
ReconciliationRun.startedAt: When the run started.
ReconciliationRun.finishedAt: When the run finished; null while RUNNING.
ReconciliationRun.agreement: The agreement whose movements were compared.
ReconciliationRun.discrepancies: Each difference found, in the order found.
ReconciliationRun.discrepancies(kind): Only discrepancies of this kind.
DiscrepancyKind: How an operator's record and the gateway differ.
DiscrepancyKind.MISSING_IN_GATEWAY: A record of the operator the gateway has no movement for.
DiscrepancyKind.MISSING_AT_PARTNER: A gateway movement of the period absent from the operator's report.
DiscrepancyKind.AMOUNT_MISMATCH: A record and a movement of the same reference and kind whose amounts differ.
DiscrepancyKind.DUPLICATE: A reference reported more often than the movement happened.
DiscrepancyStatus: Whether a discrepancy is settled.
DiscrepancyStatus.OPEN: Not yet resolved.
DiscrepancyStatus.RESOLVED: Resolved; `resolution` says how.
Discrepancy: One difference between an operator's records and the gateway's movements.
Discrepancy.reference: The movement's reference.
Discrepancy.kind: How they differ.
Discrepancy.gatewayAmountWon: The gateway movement's gross won; null when the gateway has none.
Discrepancy.partnerAmountWon: The operator's recorded won; null when the operator reported none.
Discrepancy.status: Whether it is resolved.
Discrepancy.resolution: How it was resolved, for people; null while OPEN.
SubmitReconciliationReportInput: An operator's records of an agreement's movements for a period, to compare with the gateway's.
SubmitReconciliationReportInput.agreementCode: The agreement's code.
SubmitReconciliationReportInput.periodStart: First day of the period, Asia/Seoul.
SubmitReconciliationReportInput.periodEnd: Last day of the period (inclusive), Asia/Seoul.
SubmitReconciliationReportInput.records: The operator's records of the period.
ReconciliationPayload: What submitReconciliationReport answers: the reconciliation run, or the business errors that stopped it.
ReconciliationRecordInput: One movement as the operator recorded it.
ReconciliationRecordInput.kind: The kind of movement.
ReconciliationRecordInput.amountWon: Its gross won value.
ReconciliationRecordInput.occurredAt: When it happened (its capture or exchange time).
ResolveDiscrepancyInput: Marks a discrepancy resolved.
ResolveDiscrepancyInput.discrepancyId: The discrepancy's id.
ResolveDiscrepancyInput.resolution: How it was resolved, for people.
ConnectorJob: What a connector does for its partner (docs/connectors.md).
ConnectorJob.PULL_ACTIVITY: Reads members' day totals from the operator and records them (as recordActivities). OPERATOR.
ConnectorJob.PULL_RECONCILIATION: Reads the operator's records of a period and starts a reconciliation run. OPERATOR.
ConnectorJob.PUSH_STATEMENT: Sends the sponsor's issued donation statements. SPONSOR.
ConnectorStatus: A connector's health, a circuit breaker.
ConnectorStatus.HEALTHY: The last run reached the partner.
ConnectorStatus.DEGRADED: The last run could not reach the partner after its retries.
ConnectorStatus.DOWN: Several runs in a row failed; nothing is tried until the cooldown has passed (UPSTREAM_UNAVAILABLE).
ConnectorStatus.DISABLED: Switched off by the program office.
Connector: The gateway's link to a partner's system that does not call the gateway itself.
Connector.status: Its health.
Connector.lastSyncAt: When a run last finished; null before the first.
Connector.lastError: The last failed run's error; null when none.
Connector.partner: The partner it serves.
ConnectorRun: One run of a connector's job.
ConnectorRun.job: The job run.
ConnectorRun.status: Where the run stands.
ConnectorRun.records: Records read or sent.
ConnectorRun.error: Why it failed; null unless FAILED.
ConnectorRun.startedAt: When it started.
ConnectorRun.finishedAt: When it finished; null while RUNNING.
ConfigureConnectorInput: A partner's connector of one type.
ConfigureConnectorInput.partnerCode: Code of the partner it serves.
ConfigureConnectorInput.jobs: The jobs it serves; each must suit the partner's kind.
ConfigureConnectorInput.enabled: false: switched off (DISABLED).
SyncConnectorInput: Runs a connector's job now.
SyncConnectorInput.partnerCode: Code of the partner whose connector runs.
SyncConnectorInput.job: The job to run.
DeliveryStatus: Where a webhook delivery stands.
DeliveryStatus.PENDING: Not yet accepted; retried on the Standard Webhooks schedule.
DeliveryStatus.DELIVERED: The endpoint answered 2xx.
DeliveryStatus.FAILED: Retries ran out, or the endpoint answered 410 (and was disabled); redeliverWebhook sends it again.
WebhookEndpoint: A partner's URL that receives signed events of the types it chose (docs/webhooks.md).
WebhookEndpoint.url: The URL events are POSTed to.
WebhookEndpoint.eventTypes: Event types sent to it, e.g. redemption.captured.
WebhookEndpoint.enabled: false once deleted or gone (410); nothing more is sent.
WebhookEndpoint.createdAt: When it was registered.
WebhookDelivery: One event sent (or to be sent) to one endpoint.
WebhookDelivery.eventType: The event's type, e.g. redemption.captured.
WebhookDelivery.status: Where the delivery stands.
WebhookDelivery.attempts: Attempts made so far.
WebhookDelivery.lastStatusCode: HTTP status of the last attempt; null when none answered.
WebhookDelivery.lastError: Why the last attempt failed; null when none did.
WebhookDelivery.nextAttemptAt: When it is tried next; null once DELIVERED or FAILED.
WebhookDelivery.createdAt: When the delivery was queued, in the same transaction as the change it reports.
WebhookDelivery.endpoint: The endpoint it goes to.
CreateWebhookEndpointPayload: What createWebhookEndpoint answers: the endpoint and, once, its signing secret; or the business errors that stopped it.
CreateWebhookEndpointInput: A new webhook endpoint of the caller.
CreateWebhookEndpointInput.url: The https:// (or http://) URL to POST events to; private, loopback and metadata addresses are refused.
CreateWebhookEndpointInput.eventTypes: Event types to send, from the contract's list.
DeleteWebhookEndpointInput: Names one of the caller's endpoints.
DeleteWebhookEndpointInput.id: The endpoint's id.
RedeliverWebhookInput: Names one of the caller's deliveries.
RedeliverWebhookInput.deliveryId: The delivery's id.
AuditEvent: One entry of the hash-chained audit log: who did what, with what outcome.
AuditEvent.at: When it happened.
AuditEvent.clientId: The OAuth client that acted.
AuditEvent.partner: The client's partner; null for an anonymous request.
AuditEvent.operation: The operation, e.g. the mutation's name.
AuditEvent.outcome: How it ended: OK, or the error code it was refused or failed with.
"""
