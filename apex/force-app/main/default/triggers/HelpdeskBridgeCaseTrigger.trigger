/**
 * Hands every Case change to HelpdeskBridgeEvents, which sends owner_changed, status_changed and deleted
 * events to the Helpdesk Bridge in batches of up to 200 (one Queueable and one callout per trigger chunk).
 */
trigger HelpdeskBridgeCaseTrigger on Case(after insert, after update, after delete, after undelete) {
    HelpdeskBridgeEvents.onCase(Trigger.operationType, Trigger.new, Trigger.oldMap);
}
