"""Descriptions: redemption at checkout, exchange, campaigns and donations."""

TEXT = """
RedemptionStatus: Where a redemption stands.
RedemptionStatus.AUTHORIZED: The member's points are held; capture or void it before it expires (15 minutes).
RedemptionStatus.CAPTURED: Points taken (all or part of the hold; the rest was released).
RedemptionStatus.PARTIALLY_REFUNDED: Part of the captured won was refunded.
RedemptionStatus.REFUNDED: Everything captured was refunded.
RedemptionStatus.VOIDED: The hold was cancelled and its points released.
RedemptionStatus.EXPIRED: The hold was neither captured nor voided in time; its points were released.
Redemption: A member's payment with points at a merchant's checkout.
Redemption.reference: Reference shared with every partner the movement concerns (ledger entries, webhooks, settlement).
Redemption.orderId: The merchant's own order id.
Redemption.status: Where the redemption stands.
Redemption.amountWon: Won authorized at checkout.
Redemption.capturedWon: Won captured; 0 until captured.
Redemption.refundedWon: Won refunded so far.
Redemption.unit: Code of the member's point unit.
Redemption.createdAt: When it was authorized.
Redemption.merchant: The merchant where the member paid.
RedemptionFilter: Narrows a list of redemptions; every field given must match.
RedemptionFilter.status: Only redemptions in this status.
RedemptionFilter.orderId: Only redemptions of this merchant order id.
AuthorizeRedemptionInput: Holds a member's points for a checkout.
AuthorizeRedemptionInput.amountWon: Won to pay with points, at least 1; converted at the member's unit's wonPerPoint.
AuthorizeRedemptionInput.orderId: The merchant's own order id (to look the redemption up later).
AuthorizeRedemptionInput.idempotencyKey: Unique per intended authorization, e.g. "{orderId}-pay"; a replay returns the first result.
CaptureRedemptionInput: Takes held points.
CaptureRedemptionInput.redemptionId: The AUTHORIZED redemption's id.
CaptureRedemptionInput.idempotencyKey: Unique per intended capture, e.g. "{orderId}-capture".
VoidRedemptionInput: Cancels a hold and releases its points.
VoidRedemptionInput.redemptionId: The AUTHORIZED redemption's id.
VoidRedemptionInput.idempotencyKey: Unique per intended void.
RefundRedemptionInput: Gives captured won back to the member as points.
RefundRedemptionInput.redemptionId: The captured redemption's id.
RefundRedemptionInput.amountWon: Won to refund, at most what is left to refund (else AMOUNT_EXCEEDS_CAPTURED).
RefundRedemptionInput.idempotencyKey: Unique per intended refund, e.g. "{orderId}-refund-{n}".
RefundRedemptionInput.reason: Why, for people; shown in the ledger entry's memo.
Exchange: Points moved from a member of one operator to a member of another, under an agreement.
Exchange.reference: Reference shared with both operators (ledger entries, webhooks, settlement).
Exchange.fromPoints: Points taken from the giving member.
Exchange.fromUnit: The giving operator's point unit.
Exchange.toPoints: Points credited to the receiving member: floor((wonValue - feeWon) / wonPerPoint) of the receiving unit.
Exchange.toUnit: The receiving operator's point unit.
Exchange.wonValue: Won value of the points given: floor(fromPoints x wonPerPoint).
Exchange.feeWon: The agreement's fee: floor(wonValue x feeBps / 10000).
Exchange.createdAt: When the exchange happened.
Exchange.fromOperator: The operator whose member gave points.
Exchange.toOperator: The operator whose member received points.
ExchangePointsInput: Gives a member's points to a member of another program.
ExchangePointsInput.points: Points to give, at least 1.
ExchangePointsInput.idempotencyKey: Unique per intended exchange; a replay returns the first result.
CampaignStatus: Whether a campaign is running, by its dates in Asia/Seoul.
CampaignStatus.SCHEDULED: Its first day is still to come.
CampaignStatus.ACTIVE: Running: participants' walking counts and donations on it are matched.
CampaignStatus.ENDED: Its last day has passed.
Campaign: A sponsor's walking campaign: won per km walked, per goal reached and matched on donations, for one beneficiary, within a budget.
Campaign.code: Stable code, e.g. warm-steps-2026.
Campaign.name: Display name.
Campaign.startsOn: First day, Asia/Seoul.
Campaign.endsOn: Last day (inclusive), Asia/Seoul.
Campaign.budgetWon: The most the sponsor gives on the campaign, in won.
Campaign.participants: Members who joined.
Campaign.achievers: Participants who reached goalSteps.
Campaign.distanceKm: Kilometres participants walked within the campaign's dates.
Campaign.sponsor: The sponsor who funds it.
Campaign.beneficiary: The beneficiary who receives the donations.
Campaign.status: Whether it is running.
CreateCampaignInput: A new campaign.
CreateCampaignInput.code: Stable code, unique.
CreateCampaignInput.name: Display name.
CreateCampaignInput.beneficiaryCode: Code of the BENEFICIARY that receives the donations.
CreateCampaignInput.startsOn: First day, Asia/Seoul.
CreateCampaignInput.endsOn: Last day (inclusive), not before startsOn.
CreateCampaignInput.wonPerKm: Won the sponsor gives per km walked by participants (the program's figure: 100); 0 for none.
CreateCampaignInput.goalSteps: Steps a participant must reach within the period for wonPerAchiever; null: no challenge.
CreateCampaignInput.wonPerAchiever: Won the sponsor gives per participant reaching goalSteps; 0 for none.
CreateCampaignInput.matchRatio: Won the sponsor adds per won members donate on the campaign, e.g. "1.0"; "0" for none.
CreateCampaignInput.budgetWon: The most the sponsor gives on the campaign, in won.
JoinCampaignInput: Enrols a member in a campaign.
JoinCampaignPayload: What joinCampaign answers: the campaign joined, or the business errors that stopped it.
JoinCampaignInput.memberExternalId: The operator's identifier of its member; an unknown one is enrolled.
JoinCampaignInput.campaignCode: Code of an ACTIVE or SCHEDULED campaign.
Donation: Points a member donated to a beneficiary.
Donation.reference: Reference shared with every partner the donation concerns.
Donation.points: Points donated.
Donation.unit: Code of the member's point unit.
Donation.wonValue: Won value of the points: floor(points x wonPerPoint).
Donation.createdAt: When it was donated.
Donation.operator: The operator of the donating member.
Donation.beneficiary: Who received it.
Donation.campaign: The campaign whose sponsor matched it; null if none.
DonationFilter: Narrows a list of donations; every field given must match.
DonationFilter.campaignCode: Only donations on this campaign.
DonationFilter.beneficiaryCode: Only donations to this beneficiary.
DonationFilter.from: Made at or after this instant.
DonationFilter.to: Made before this instant.
DonatePointsInput: A member's donation of points.
DonatePointsInput.memberExternalId: The operator's identifier of its member.
DonatePointsInput.beneficiaryCode: Code of the BENEFICIARY to donate to.
DonatePointsInput.points: Points to donate, at least 1.
DonatePointsInput.idempotencyKey: Unique per intended donation; a replay returns the first result.
DonationStatement: What a sponsor owes for a period, per campaign and beneficiary, signed so anyone can verify it (docs/sponsors.md).
DonationStatement.periodStart: First day of the period, Asia/Seoul.
DonationStatement.periodEnd: Last day of the period (inclusive), Asia/Seoul.
DonationStatement.lines: One line per campaign and beneficiary.
DonationStatement.totalWon: Sum of the lines' totalWon.
DonationStatement.issuedAt: When the statement was issued.
DonationStatement.csvUrl: The lines as CSV; a signed URL valid for one hour.
DonationStatement.pdfUrl: The statement as PDF; a signed URL valid for one hour.
DonationStatement.sponsor: The sponsor the statement is for.
DonationStatementLine: What a sponsor owes on one campaign for the period.
DonationStatementLine.totalWon: distanceWon + achievementWon + matchedWon.
DonationStatementLine.participants: Participants who walked on some date of the period within the campaign's dates.
DonationStatementLine.achievers: Goals reached with walking of the period's dates.
DonationStatementLine.distanceKm: Kilometres participants walked in the period.
DonationStatementLine.campaign: The campaign.
DonationStatementLine.beneficiary: Who receives the line's won.
"""
