// Package browser holds the browser tests of groupsync, in Debian's
// Chromium driven by chromedp against a `groupsync dev` binary.
//
// TestE3KitBrowsers runs the official E3Kit browser bundles
// (@virgilsecurity/e3kit-browser 2.5.5 and 3.0.5, pinned by
// package-lock.json) from a page served on another origin that calls the
// client API directly, as a web app does.
//
// TestConsole drives the web console of a dev instance of its own as an
// operator would: it logs in with dev.json's credentials, finds a job that
// failed because its group grew past E3Kit's 100 participants, retries it
// from the page once a kick made room (a POST without the CSRF token is
// refused first), checks in the Virgil emulator that the group converged,
// and has the group page explain a kicked member and a pending one. With
// -browser.screenshots=DIR (make screenshots) it saves the pages it shows
// as PNGs; docs/images holds them for the README.
//
// The test needs the chromium package (.ci/run installs it) and the npm
// packages of this folder (`make test` runs `npm ci` here). Without chromium
// it is skipped with a message, except in CI (CI=true), where that is a
// failure.
package browser
