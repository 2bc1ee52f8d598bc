// The client half of the "livereload" service (docs/livereload.md). In a
// page, a push {paths, reload} reloads it, or (reload false: stylesheets
// only) points each matching <link rel=stylesheet> (every one when none
// matches) at a cache-busting URL, restyling in place. Without a document
// (Node.js) it does nothing: app.api.livereload.on(fn) sees every push.
(s) => {
  if (typeof document == "object")
    s.on((m) => {
      if (m.reload) return location.reload();
      const all = [...document.querySelectorAll("link[rel~=stylesheet][href]")];
      const hit = all.filter((l) => m.paths.some((p) => decodeURI(new URL(l.href).pathname).endsWith("/" + p)));
      for (const l of hit.length ? hit : all) {
        const u = new URL(l.href);
        u.searchParams.set("livereload", Date.now());
        l.href = u;
      }
    });
  return {};
}
