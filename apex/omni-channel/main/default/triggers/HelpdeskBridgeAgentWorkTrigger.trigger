/**
 * Omni-Channel routes and accepts work without firing the Case trigger: when an agent accepts a Case
 * (AgentWork Status becomes 'Opened'), HelpdeskBridgeEvents sends work_accepted to the Helpdesk Bridge.
 * Deploy this folder only in orgs where Omni-Channel is enabled (the AgentWork object exists only there).
 */
trigger HelpdeskBridgeAgentWorkTrigger on AgentWork(after insert, after update) {
    HelpdeskBridgeEvents.onAgentWork(Trigger.new, Trigger.oldMap);
}
