// The editors' calendar: read and navigate, drag an item to reschedule it, fill an open slot.
//
// Times: FullCalendar cannot show a named timezone without extra plugins. The server sends the
// organisation's wall-clock times WITHOUT an offset and FullCalendar runs in 'UTC', which shows
// such times unchanged, whatever the browser's own timezone. The range FullCalendar asks for comes
// back to the server the same way, as does the time an item is dropped on, and "now" below is the
// organisation's wall-clock too. See publisher/web/api_calendar.py.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("calendar-config").textContent);
  const filters = document.getElementById("calendar-filters");
  const errorBox = document.getElementById("calendar-error");
  const notice = document.getElementById("calendar-notice");
  const popover = document.getElementById("slot-fill");
  const csrfToken = document.querySelector("meta[name=csrf-token]").content;
  let pendingSlot = null; // the slot event the popover asks about

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

  // A refusal (a move or a fill) stays until dismissed: the editor must read why.
  function showNotice(message) {
    document.getElementById("calendar-notice-text").textContent = message;
    notice.hidden = !message;
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
        if (!response.ok) throw explained((body.error && body.error.message) || config.messages.loadFailed);
        showError("");
        success(body);
      })
      .catch((err) => {
        showError(err.explained ? err.message : config.messages.loadFailed);
        failure(err);
      });
  }

  // POST JSON to the API with the page's CSRF token; resolves to the answer's body, or rejects with
  // an Error whose message is the server's explanation (or `fallback` when there is none).
  async function post(url, payload, fallback) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify(payload),
      });
    } catch (err) {
      throw explained(fallback);
    }
    if (!(response.headers.get("Content-Type") || "").includes("application/json")) {
      throw explained(response.ok ? config.messages.loggedOut : fallback);
    }
    const body = await response.json();
    if (!response.ok) throw explained((body.error && body.error.message) || fallback);
    return body;
  }

  // A drop (or, in week view, a stretch) moves the item: the server checks the time, the item's
  // state and its version; a refusal puts the event back where it was and says why.
  function moved(info) {
    const event = info.event;
    const url = config.moveUrl.replace(/\/0\/move$/, `/${event.extendedProps.itemId}/move`);
    post(url, { planned_at: event.startStr.slice(0, 19), version: event.extendedProps.version },
      config.messages.moveFailed)
      .then((fresh) => {
        showNotice("");
        event.setExtendedProp("version", fresh.extendedProps.version);
        // Numbers and open slots around the old and the new place change too.
        calendar.refetchEvents();
      })
      .catch((err) => {
        info.revert();
        showNotice(err.explained ? err.message : config.messages.moveFailed);
      });
  }

  function askToFill(info) {
    const props = info.event.extendedProps;
    const date = info.event.startStr.slice(0, 16).replace("T", " ");
    document.getElementById("slot-fill-question").textContent = config.messages.fillQuestion
      .replace("{label}", props.label).replace("{column}", props.column.name).replace("{date}", date);
    const box = info.el.getBoundingClientRect();
    popover.style.left = `${Math.max(8, box.left + window.scrollX)}px`;
    popover.style.top = `${box.bottom + window.scrollY + 4}px`;
    pendingSlot = info.event;
    popover.hidden = false;
    document.getElementById("slot-fill-yes").focus();
  }

  function closePopover() {
    popover.hidden = true;
    pendingSlot = null;
  }

  function fill() {
    const slot = pendingSlot;
    if (!slot) return;
    const button = document.getElementById("slot-fill-yes");
    button.disabled = true;
    post(config.fillUrl, { column_id: slot.extendedProps.column.id, at: slot.extendedProps.at },
      config.messages.fillFailed)
      .then((made) => { window.location.assign(made.edit_url); })
      .catch((err) => {
        closePopover();
        showNotice(err.explained ? err.message : config.messages.fillFailed);
        calendar.refetchEvents(); // someone may have filled it meanwhile
      })
      .finally(() => { button.disabled = false; });
  }

  function tooltip(event) {
    const props = event.extendedProps;
    if (props.kind === "slot") return `${props.column.name}\n${props.label}`;
    const lines = [props.itemTitle, props.statusLabel];
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
    allDaySlot: false, // items always have a time
    scrollTime: "08:00:00",
    nowIndicator: true,
    dayMaxEvents: true,
    // Each event says whether it may move (`editable`: an editor's unsent item); slots never do.
    editable: config.canWrite,
    eventDurationEditable: false, // an item has a time, not a length
    events: loadEvents, // an item has a url: a click opens its page
    eventDrop: moved,
    eventClick: (info) => {
      if (info.event.extendedProps.kind !== "slot") return; // the item's url does the rest
      info.jsEvent.preventDefault();
      if (config.canWrite) askToFill(info);
    },
    eventDidMount: (arg) => { arg.el.title = tooltip(arg.event); },
  });
  calendar.render();

  filters.addEventListener("change", () => calendar.refetchEvents());
  filters.addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("calendar-notice-close").addEventListener("click", () => showNotice(""));
  document.getElementById("slot-fill-yes").addEventListener("click", fill);
  document.getElementById("slot-fill-no").addEventListener("click", closePopover);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closePopover(); });
})();
