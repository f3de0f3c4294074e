"""axe-core (vendored: tests/e2e/vendor/axe.min.js, axe-core 4.14.1, MPL-2.0) run in the page: the
serious and critical accessibility violations of the screen as it is now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).parent / "vendor" / "axe.min.js"


async def serious_violations(page: Any) -> list[str]:
    """'rule: how many nodes (first target)' for each serious or critical violation."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=AXE.read_text())
    found = await page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ["violations"]});
        return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => v.id + " (" + v.impact + "): " + v.nodes.length + " e.g. "
                 + JSON.stringify(v.nodes[0].target));
    }""")
    return list(found)
