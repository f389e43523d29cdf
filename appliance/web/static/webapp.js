// Registers the service worker of the installable web app (templates/webapp/sw.js), where
// the browser allows one: over HTTPS, or on the machine itself.
"use strict";

if ("serviceWorker" in navigator) {
  window.addEventListener("load", function () {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {
      // without it the site works as before, only not offline
    });
  });
}
