from callback.service import main

raise SystemExit(main())
