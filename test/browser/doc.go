// Package browser holds the browser test of groupsync: the official E3Kit
// browser bundles (@virgilsecurity/e3kit-browser 2.5.5 and 3.0.5, pinned by
// package-lock.json) run in Debian's Chromium, driven by chromedp, against a
// `groupsync dev` instance, from a page served on another origin that calls
// the client API directly, as a web app does.
//
// The test needs the chromium package (.ci/run installs it) and the npm
// packages of this folder (`make test` runs `npm ci` here). Without chromium
// it is skipped with a message, except in CI (CI=true), where that is a
// failure.
package browser
