#!/bin/sh
exec node "$(dirname "$0")/../app.js"
