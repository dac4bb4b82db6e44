/**
 * Hands every new CaseComment to HelpdeskBridgeEvents, which sends a comment_added event for each published one
 * to the Helpdesk Bridge in batches of up to 200 (one Queueable and one callout per trigger chunk). The bridge
 * reads the comment back over the REST API and relays an agent's reply to the customer's chat.
 */
trigger HelpdeskBridgeCaseCommentTrigger on CaseComment(after insert) {
    HelpdeskBridgeEvents.onCaseComment(Trigger.new);
}
