from keysynth.cli import main

raise SystemExit(main())
