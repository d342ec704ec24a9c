// The editors' calendar (read and navigate).
//
// Times: FullCalendar cannot show a named timezone without extra plugins. The server sends the
// organisation's wall-clock times WITHOUT an offset and FullCalendar runs in 'UTC', which shows
// such times unchanged, whatever the browser's own timezone. The range FullCalendar asks for comes
// back to the server the same way, and "now" below is the organisation's wall-clock too.
// See publisher/web/calendar_view.py.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("calendar-config").textContent);
  const filters = document.getElementById("calendar-filters");
  const errorBox = document.getElementById("calendar-error");

  // The organisation's current wall-clock time, so that "today" and the first month shown are
  // the organisation's rather than UTC's.
  function orgNow() {
    const parts = {};
    new Intl.DateTimeFormat("en-CA", {
      timeZone: config.timeZone, hourCycle: "h23",
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(new Date()).forEach((p) => { parts[p.type] = p.value; });
    return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}`;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function explained(message) {
    const err = new Error(message);
    err.explained = true;
    return err;
  }

  // The query for the visible range and the chosen filters, or null when no column is ticked.
  function query(info) {
    const params = new URLSearchParams({ start: info.startStr, end: info.endStr });
    const columns = [...filters.querySelectorAll("input[name=column]")];
    const ticked = columns.filter((box) => box.checked);
    if (ticked.length === 0) return null;
    if (ticked.length < columns.length) ticked.forEach((box) => params.append("column", box.value));
    for (const name of ["channel", "status", "origin"]) {
      const value = filters.elements[name].value;
      if (value) params.append(name, value);
    }
    return params;
  }

  function loadEvents(info, success, failure) {
    const params = query(info);
    if (params === null) {
      showError("");
      success([]);
      return;
    }
    fetch(`${config.eventsUrl}?${params}`, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(async (response) => {
        // An expired session answers with the login page instead of JSON.
        if (!(response.headers.get("Content-Type") || "").includes("application/json")) {
          throw explained(response.ok ? config.messages.loggedOut : config.messages.loadFailed);
        }
        const body = await response.json();
        if (!response.ok) throw explained(body.error || config.messages.loadFailed);
        showError("");
        success(body);
      })
      .catch((err) => {
        showError(err.explained ? err.message : config.messages.loadFailed);
        failure(err);
      });
  }

  function tooltip(event) {
    const props = event.extendedProps;
    const lines = [props.itemTitle];
    if (props.column) lines.push(props.column.name);
    props.deliveries.forEach((d) => lines.push(`${d.channel}: ${d.statusLabel}`));
    return lines.join("\n");
  }

  const hhmm = { hour: "2-digit", minute: "2-digit", hour12: false };
  const calendar = new FullCalendar.Calendar(document.getElementById("calendar"), {
    timeZone: "UTC", // on purpose: see the top of this file
    now: orgNow,
    locale: config.locale,
    firstDay: 1,
    initialView: "dayGridMonth",
    headerToolbar: { left: "prev,next today", center: "title", right: "dayGridMonth,timeGridWeek,listWeek" },
    eventTimeFormat: hhmm,
    slotLabelFormat: hhmm,
    views: { dayGridMonth: { eventDisplay: "block" } }, // a filled box in the column's colour
    allDaySlot: false, // deliveries always have a time
    scrollTime: "08:00:00",
    nowIndicator: true,
    dayMaxEvents: true,
    events: loadEvents, // each event has a url: a click opens the item's page
    eventDidMount: (arg) => { arg.el.title = tooltip(arg.event); },
  });
  calendar.render();

  filters.addEventListener("change", () => calendar.refetchEvents());
  filters.addEventListener("submit", (e) => e.preventDefault());
})();
