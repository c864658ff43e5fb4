"""Outputter for palplat's runners: prints a report's text (the Markdown plan, the status
table) as it is; anything else as Salt's ``nested`` outputter would."""

import salt.output


def output(data, **kwargs):
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        return data["text"]
    return salt.output.out_format(data, "nested", __opts__)
