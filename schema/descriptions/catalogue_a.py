"""Descriptions: the schema's roots, errors, partners, clients, members and walking."""

TEXT = """
Query: Everything a partner can read; each field says who may read what (tenancy and scopes, docs/oauth.md).
Query.node: Any object by its global id, if the caller may read it; another tenant's id answers null like an unknown one.
Query.node(id): The object's global id, as its `id` field gave it.
Query.partner: A partner by its code; null when there is none the caller may see.
Query.partner(code): The partner's code, e.g. seoul-walking.
Query.partners(kind): Only partners of this kind.
Query.member(externalId): The operator's own identifier of the member.
Query.member(operatorCode): ADMIN only: the code of the operator the member belongs to.
Query.campaign(code): The campaign's code.
Query.campaigns(status): Only campaigns in this status.
Query.donations(filter): Narrows the list by campaign, beneficiary and time.
Query.donationStatement(periodStart): First day of the period, Asia/Seoul.
Query.donationStatement(periodEnd): Last day of the period (inclusive), Asia/Seoul.
Query.donationStatement(sponsorCode): ADMIN only: the sponsor whose statement to read.
Query.redemption: A redemption by id (redemptions:read): a MERCHANT its own, an OPERATOR those of its members or merchants; otherwise null.
Query.redemption(id): The redemption's global id.
Query.redemptions(filter): Narrows the list by status, order id, reference and time.
Query.settlement: A settlement by id (settlements:read) of an agreement the caller is party to; otherwise null.
Query.settlement(id): The settlement's global id.
Query.settlements(agreementCode): Only settlements of this agreement.
Query.settlements(status): Only settlements in this status.
Query.reconciliationRun: A reconciliation run by id (settlements:read) of an agreement the caller is party to; otherwise null.
Query.reconciliationRun(id): The run's global id, as submitReconciliationReport returned it.
Query.webhookDeliveries(endpointId): Only deliveries to this endpoint.
Query.webhookDeliveries(status): Only deliveries in this status.
Mutation: Every change a partner can make; each mutation takes one input and answers a payload whose `errors` list business errors (a payload with errors changed nothing).
Mutation.deleteWebhookEndpoint: Any partner, for its own endpoint: disables it (disabledReason "deleted"); no further deliveries are made to it.
Mutation.redeliverWebhook: Any partner, for its own delivery: sends the event again (same webhook-id) and resets its attempts.
Node: An object with a global id that `node(id:)` can read again.
Node.id: Opaque global id; `node(id:)` reads the object again by it.
PageInfo: Where a page sits in its list (Relay).
PageInfo.hasNextPage: More items follow this page.
PageInfo.hasPreviousPage: Items come before this page (it was read with `after`).
PageInfo.startCursor: Cursor of the page's first item; null for an empty page.
PageInfo.endCursor: Cursor of the page's last item; pass it as `after` to read the next page. Null for an empty page.
ErrorCode: Machine-readable reason of a business error (UserError.code) or of a GraphQL error (extensions.code).
ErrorCode.INVALID_INPUT: An input value is malformed or out of range; `field` names it.
ErrorCode.NOT_FOUND: No such object, or one the caller may not see (the two answer alike).
ErrorCode.FORBIDDEN: The token lacks the scope, or the partner the tenancy, the field needs.
ErrorCode.IDEMPOTENCY_KEY_REUSED: The idempotencyKey was used before with another input.
ErrorCode.INVALID_STATE: The object is in a state that does not allow the action, e.g. capturing a voided redemption.
ErrorCode.INSUFFICIENT_POINTS: The member has fewer available points than the movement needs.
ErrorCode.INVALID_MEMBER_CODE: The member code is unknown, already used or of the wrong purpose.
ErrorCode.MEMBER_CODE_EXPIRED: The member code's time ran out; the member asks for a new one.
ErrorCode.MEMBER_SUSPENDED: The member is SUSPENDED or CLOSED and can neither earn nor spend.
ErrorCode.NO_AGREEMENT: No active agreement between the two operators allows this movement.
ErrorCode.AMOUNT_EXCEEDS_AUTHORIZED: A capture of more won than the authorization holds.
ErrorCode.AMOUNT_EXCEEDS_CAPTURED: A refund of more won than is left to refund.
ErrorCode.IMPLAUSIBLE_ACTIVITY: Walking figures no person could walk (too many steps, an impossible stride).
ErrorCode.CAMPAIGN_NOT_ACTIVE: The campaign has ENDED (or, to match a donation, is not ACTIVE today).
ErrorCode.BUDGET_EXHAUSTED: The campaign's budget is spent; the sponsor gives no more on it.
ErrorCode.DIGEST_MISMATCH: The digest given is not the document's.
ErrorCode.LIMIT_EXCEEDED: The request is over a limit (depth, aliases, tokens, `first`, batch, body size) and was not executed.
ErrorCode.UPSTREAM_UNAVAILABLE: A partner's system the gateway needs does not answer (a connector that is DOWN); try again later.
UserError: A business error of a mutation; the mutation changed nothing.
UserError.code: What went wrong, for programs.
UserError.message: What went wrong, for people; never holds another tenant's data.
PartnerKind: The role a partner plays in the program; it decides the scopes its clients may hold.
PartnerKind.OPERATOR: A mileage program that owns members and their points.
PartnerKind.MERCHANT: A store or point-of-sale system that accepts points at checkout.
PartnerKind.SPONSOR: A company that funds campaigns and donations.
PartnerKind.BENEFICIARY: A social enterprise that receives donations.
PartnerKind.ADMIN: The program office that administers the gateway.
PointUnit: An operator's points: their code and their value in won.
Partner: An organisation taking part in the program: operator, merchant, sponsor, beneficiary or the program office.
Partner.code: Stable slug, e.g. seoul-walking.
Partner.name: Display name.
Partner.kind: The partner's role in the program.
Partner.createdAt: When the partner was registered.
Partner.unit: For an OPERATOR: its point unit; null for other kinds.
Viewer: The caller: the OAuth client of the access token and its partner.
Viewer.partner: The partner the client belongs to.
Viewer.clientId: The OAuth client id of the access token.
Viewer.scopes: The scopes the access token grants.
ClientAuthMethod: How an OAuth client authenticates at the token endpoint.
ClientAuthMethod.CLIENT_SECRET_BASIC: client_id and secret in an HTTP Basic header.
ClientAuthMethod.CLIENT_SECRET_POST: client_id and client_secret in the form body.
ClientAuthMethod.PRIVATE_KEY_JWT: A JWT assertion signed with a key whose public half was registered as a JWKS (RFC 7523).
Client: An OAuth client of a partner.
Client.clientId: The OAuth client id.
Client.scopes: The scopes the client may ask for; a token never gets more.
Client.authMethod: How the client authenticates at the token endpoint.
Client.enabled: False once disabled: the client gets no tokens and its tokens are refused.
Client.createdAt: When the client was created.
Client.partner: The partner the client acts for.
CreateClientPayload: What createClient answers: the new client and, once, its secret; or the business errors that stopped it.
CreatePartnerInput: A new partner.
CreatePartnerInput.code: Stable slug, unique, e.g. seoul-walking.
CreatePartnerInput.name: Display name.
CreatePartnerInput.kind: The partner's role.
CreateClientInput: A new OAuth client for a partner.
CreateClientInput.partnerCode: Code of the partner the client acts for.
CreateClientInput.scopes: Scopes the client may ask for; each must suit the partner's kind.
CreateClientInput.authMethod: How the client will authenticate at the token endpoint.
ClientIdInput: Names an OAuth client.
ClientIdInput.clientId: The OAuth client id.
SetPersistedQueriesOnlyInput: Whether a client may run only persisted queries.
SetPersistedQueriesOnlyInput.clientId: The OAuth client id.
CreateAgreementInput: A cooperation agreement between two operators.
CreateAgreementInput.code: Stable code of the agreement, unique.
CreateAgreementInput.operatorACode: Code of one operator.
CreateAgreementInput.operatorBCode: Code of the other operator.
CreateAgreementInput.crossRedemption: Members of either operator may pay at the other's merchants.
CreateAgreementInput.pointExchange: Members may exchange points between the two programs.
CreateAgreementInput.feeBps: Fee on each cross-program movement, in basis points (1/10,000) of its won value, 0 to 10,000.
CreateAgreementInput.settlementPeriod: How often the two settle.
CreateAgreementInput.startsOn: First day the agreement applies, Asia/Seoul.
CreateAgreementInput.endsOn: Last day the agreement applies; null: open-ended.
MemberStatus: Whether a member may earn and spend.
MemberStatus.ACTIVE: Earns and spends normally.
MemberStatus.SUSPENDED: Earns and spends nothing until set ACTIVE again.
MemberStatus.CLOSED: Closed for good; earns and spends nothing.
Member: A walker enrolled with an operator, and their points.
Member.status: Whether the member may earn and spend.
Member.enrolledAt: When the member was enrolled: its first walking record or campaign join.
Member.operator: The operator the member belongs to.
Member.balance: The member's points now.
Member.activities: The member's walking days, newest first.
Member.activities(from): Only days on or after this date.
Member.activities(to): Only days on or before this date.
Member.entries: The member's ledger entries, newest first.
Balance: A member's points in their operator's unit.
Balance.unit: Code of the point unit, e.g. SWM.
EntryKind: Why a ledger entry moved points.
EntryKind.EARN: Points credited for a new day of walking.
EntryKind.ADJUST: The difference credited or debited when a day's figures were corrected.
EntryKind.REDEEM: Points spent at checkout: 0 at authorization (available to held), negative at capture.
EntryKind.RELEASE: Held points given back: a void, an expired hold, or the rest of a partial capture.
EntryKind.REFUND: Points given back by a merchant's refund.
EntryKind.DONATE: Points donated to a beneficiary.
EntryKind.EXCHANGE_OUT: Points given in an exchange to another program.
EntryKind.EXCHANGE_IN: Points received in an exchange from another program.
EntryKind.EXPIRE: Points that expired unspent, oldest lots first.
LedgerEntry: One movement of a member's points; entries are never changed or removed.
LedgerEntry.kind: Why the points moved.
LedgerEntry.unit: Code of the point unit.
LedgerEntry.balanceAfter: The member's total balance after this entry.
LedgerEntry.memo: A note a person can read, e.g. the merchant and order.
LedgerEntry.createdAt: When the movement happened.
MemberCodePurpose: What a member code may be used for.
MemberCodePurpose.PAYMENT: Paying at a merchant's checkout (authorizeRedemption).
MemberCodePurpose.RECEIVE: Receiving points from another program (exchangePoints).
MemberCode: A short-lived single-use code a member shows to pay or to receive points.
MemberCode.purpose: What the code may be used for.
MemberCode.expiresAt: After this instant the code is refused (MEMBER_CODE_EXPIRED).
IssueMemberCodeInput: Asks for a member code.
IssueMemberCodeInput.memberExternalId: The operator's identifier of its member.
IssueMemberCodeInput.purpose: What the code is for.
SetMemberStatusInput: A member's new status.
SetMemberStatusInput.memberExternalId: The operator's identifier of its member.
SetMemberStatusInput.status: The new status; CLOSED is final.
Activity: A member's walking on one day (a day's total), as the operator last recorded it.
Activity.date: The day walked, Asia/Seoul.
Activity.steps: Steps walked that day.
Activity.distanceMeters: Distance walked that day, in metres.
Activity.pointsCredited: Points credited for the day so far, corrections included.
Activity.source: Where the figures came from, as the operator said (e.g. app); null if not said.
Activity.updatedAt: When the day's figures were last recorded.
ActivityInput: A member's walking total for one day.
ActivityInput.memberExternalId: The operator's identifier of its member; an unknown one is enrolled.
ActivityInput.date: The day walked, Asia/Seoul; at most 400 days back, never in the future.
ActivityInput.steps: Steps walked that day; more than a person walks in a day (100,000 by default) is REJECTED.
ActivityInput.distanceMeters: Distance walked that day, in metres.
ActivityInput.source: Where the figures came from, e.g. app or pedometer.
ActivityStatus: What recording a day did.
ActivityStatus.CREDITED: A new day; points credited as an EARN entry.
ActivityStatus.ADJUSTED: The day was recorded before with other figures; only the difference was credited or debited (ADJUST).
ActivityStatus.UNCHANGED: The same figures again; nothing happened.
ActivityStatus.CAPPED: A new day over the daily cap; credited up to the cap.
ActivityStatus.REJECTED: Nothing credited; `reason` says why.
ActivityResult: What became of one record of recordActivities, in the order sent.
ActivityResult.memberExternalId: The member the record was for.
ActivityResult.date: The day the record was for.
ActivityResult.status: What recording it did.
ActivityResult.reason: Why it was REJECTED, or why less than the correction was taken back; null otherwise.
RecordActivitiesInput: A batch of walking days to credit.
RecordActivitiesPayload: What recordActivities answers: one result per record; or, when the batch as a whole was refused (e.g. over 1,000 records), business errors and no results.
RecordActivitiesPayload.results: One result per record, in the order sent; one bad record never fails the others.
"""
