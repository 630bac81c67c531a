"""Hooks for .ci/schemathesis.sh.

`cohort_for_single_attempt` beyond the target's cohorts is answered 500
`mpic_error:coordinator:cohort_selection`, as the reference answers it (the wire
contract keeps that status). How many cohorts a target has depends on the catalogue
and on the target's keyed hash, which no static document can state, so a generated
cohort number above 1 that the document allows is replaced by 1: the only number
every target has. Numbers the document does not allow are left alone, so negative
cases stay negative.
"""

import schemathesis

I64_MAX = 2**63 - 1


@schemathesis.hook
def before_call(context, case, **kwargs):
    body = case.body
    if not isinstance(body, dict):
        return
    orchestration = body.get("orchestration_parameters")
    if not isinstance(orchestration, dict):
        return
    cohort = orchestration.get("cohort_for_single_attempt")
    if type(cohort) is int and 1 < cohort <= I64_MAX:
        orchestration["cohort_for_single_attempt"] = 1
