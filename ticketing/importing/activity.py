"""Activity logs (one row per activity: case, activity, time, resource, attributes): each
activity becomes what its mapping rule says.

The first usable row of a case opens the ticket, whatever its activity; a rule `open` on that
row adds nothing more, and on a later row does its `repeat` action (a note by default). Other
actions: `status` (one `ChangeStatus`), `note` (an internal note), `reply` (a public comment by
the row's actor), `customer_reply` (a public comment by the requester, which reopens a solved or
pending ticket as the domain rules say) and `ignore`. Attribute columns mapped in the file
(priority, team, agent, ...) are diffed row to row as for snapshot logs."""

from __future__ import annotations

from commands import models as m
from ticketing.domain.values import ActorKind, Visibility
from ticketing.importing.mapping import ActivityRule, Unmappable, render
from ticketing.importing.plan import Attributes, CasePlanner, CaseState, RowFacts, reason_text


class ActivityPlanner(CasePlanner):
    """Plans activity-log cases: attribute diffs plus one action per activity."""

    def opening_commands(
        self, case: CaseState, facts: RowFacts, attributes: Attributes
    ) -> list[m.Command]:
        raw, rule = self._rule(facts)
        if rule.action == "open":
            return []
        return self._act(case, facts, raw, rule, rule.action)

    def row_commands(
        self, case: CaseState, facts: RowFacts, attributes: Attributes, previous: Attributes
    ) -> list[m.Command]:
        raw, rule = self._rule(facts)
        action = rule.repeat if rule.action == "open" else rule.action
        return self._act(case, facts, raw, rule, action)

    def _rule(self, facts: RowFacts) -> tuple[str, ActivityRule]:
        spec = self.mapping.activity
        assert spec is not None  # the mapping model requires [activity] for activity logs
        raw = spec.key(facts.row.values)
        if raw is None:
            raise Unmappable("missing_value", f"{spec.key_name} is empty")
        rule = spec.map.get(raw)
        if rule is not None:
            return raw, rule
        if spec.unknown == "error":
            raise Unmappable("unknown_activity", f"{spec.key_name}: {raw!r} is not in activity.map")
        return raw, ActivityRule(action=spec.unknown)

    def _act(
        self, case: CaseState, facts: RowFacts, raw: str, rule: ActivityRule, action: str
    ) -> list[m.Command]:
        label = rule.label or f"activity {raw}"
        if action == "ignore":
            return []
        if action == "status":
            return [
                case.command(m.ChangeStatus, facts, status=rule.status, reason=reason_text(label))
            ]
        values = {
            **self.template_values(case.case_id, facts.row.values),
            "activity": raw,
            "label": label,
        }
        body = render(rule.body or "{label}", values)
        if action == "note":
            return [case.command(m.AddComment, facts, body=body, visibility=Visibility.INTERNAL)]
        if action == "reply":
            return [case.command(m.AddComment, facts, body=body, visibility=Visibility.PUBLIC)]
        customer = m.ActorModel(kind=ActorKind.CUSTOMER, id=case.requester)
        reply = case.command(m.AddComment, facts, body=body, visibility=Visibility.PUBLIC)
        return [reply.model_copy(update={"actor": customer})]
