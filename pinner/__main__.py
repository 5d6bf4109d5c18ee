from pinner.cli import main

raise SystemExit(main())
